#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers

/// A small number for the calling thread, the same on every call from it: threads are numbered
/// round-robin, modulo ``count``, the first time they ask.
///
/// Readers use it to pick their own copy of a shared object (``TableHold``): when two event-loop
/// threads retain and release one object for every hit of every answer, its reference count
/// moves between the cores' caches on every change, and at a million cameras that cost a query
/// more than its index search (`camreg-bench --micro`, "on 2 threads"). With a copy per thread
/// the count stays in the thread's own cache.
public enum ThreadStripe {
    /// Number of stripes: more than the threads that read the index on any machine this runs on
    /// is not needed; threads past it share, evenly.
    public static let count = 64

    /// The calling thread's stripe, in `0..<count`.
    @inline(__always)
    public static var current: Int {
        if let p = pthread_getspecific(key) { return Int(bitPattern: p) &- 1 }
        return assign()
    }

    private static func assign() -> Int {
        let n = next.withLockedValue { v in
            defer { v = (v + 1) % count }
            return v
        }
        _ = pthread_setspecific(key, UnsafeRawPointer(bitPattern: n + 1))
        return n
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let rc = pthread_key_create(&key, nil)
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return key
    }()

    private static let next = NIOLockedValueBox(0)
}

/// A value kept once per ``ThreadStripe``: a thread updates its own copy, under its own lock
/// (uncontended unless threads share a stripe), and a reader combines the copies. For counters
/// every request bumps (`STATS`, latencies): one shared lock would make the event-loop threads
/// wait for each other, and move the counters' cache lines between cores, on every request.
public final class Striped<Value: Sendable>: @unchecked Sendable {
    /// A copy and room after it, so that two stripes' copies never share a cache line.
    @usableFromInline
    struct Padded: Sendable {
        @usableFromInline var value: Value
        let padding: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// `ThreadStripe.count` boxes, allocated here and freed in `deinit` (not an `Array`, whose
    /// buffer every reader would retain).
    @usableFromInline let boxes: UnsafeMutableBufferPointer<NIOLockedValueBox<Padded>>

    /// One copy per stripe, each made by `make`.
    public init(_ make: () -> Value) {
        boxes = .allocate(capacity: ThreadStripe.count)
        for i in 0..<ThreadStripe.count { (boxes.baseAddress! + i).initialize(to: NIOLockedValueBox(Padded(value: make()))) }
    }

    deinit {
        boxes.baseAddress!.deinitialize(count: ThreadStripe.count)
        boxes.deallocate()
    }

    /// Runs `body` on the calling thread's copy. Inlinable, so that a caller in another module
    /// gets it specialised (unspecialised, each call looked up the generic box's metadata).
    @inlinable
    public func withLocalValue<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try boxes[ThreadStripe.current].withLockedValue { try body(&$0.value) }
    }

    /// Every stripe's copy, one after the other (each read under its own lock).
    public var values: [Value] { boxes.map { $0.withLockedValue { $0.value } } }

    /// Runs `body` on every stripe's copy (e.g. to set a value everywhere).
    public func updateAll(_ body: (inout Value) -> Void) {
        for box in boxes { box.withLockedValue { body(&$0.value) } }
    }
}
