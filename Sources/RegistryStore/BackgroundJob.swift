import Foundation

/// Work run on a thread of its own, waited for with ``result()``: the cache start's table
/// packing, the import's file reader and its index snapshot build.
///
/// What `body` reads must outlive the wait (it may borrow the caller's buffers: hence
/// `@unchecked Sendable`, and every caller waits for the result, on every path).
final class BackgroundJob<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var outcome: Swift.Result<T, Error>?
    private var body: (() throws -> T)?

    /// Starts `body` at once on a new thread called `name`.
    init(name: String = "camreg-background", _ body: @escaping () throws -> T) {
        self.body = body
        // A thread of its own, never a Dispatch worker: the caller blocks until the job is
        // done, and on Linux Swift's cooperative threads are Dispatch's workers, so a job
        // queued behind blocked callers would never run (it hung the parallel test suite).
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    private func run() {
        outcome = Swift.Result { try body!() }
        body = nil
        done.signal()
    }

    /// The body's value, once it has run (or the error that stopped it). May be called any
    /// number of times, from any thread.
    func result() throws -> T {
        done.wait()
        done.signal()  // for the next caller: the outcome is set for good
        return try outcome!.get()
    }
}
