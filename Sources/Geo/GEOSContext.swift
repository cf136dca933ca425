import CGEOS
import Foundation

/// An error reported by GEOS (the message its error handler received) or by this wrapper.
public struct GeoError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What failed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// GEOS reported an error (see `message`).
        public static let geos = Code(raw: "geos")
        /// A WKT or GeoJSON text could not be read.
        public static let parse = Code(raw: "parse")
        /// The geometry is empty, invalid or of the wrong type.
        public static let invalidGeometry = Code(raw: "invalid_geometry")
        /// PROJ reported an error.
        public static let proj = Code(raw: "proj")
        public var description: String { raw }
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }
}

/// The single owner of a GEOS context handle (`GEOSContextHandle_t`).
///
/// A handle serves one thread at a time: create one per thread (``GEOSContext/current`` keeps
/// one per thread) or keep one inside an owner that serialises access. The handle is freed in
/// exactly one place, `deinit`. `@unchecked Sendable` so that an owner can hand it to the
/// thread that will use it; it must not be used from two threads at once.
public final class GEOSContext: @unchecked Sendable {
    /// The raw handle, for the wrappers in this module.
    let handle: GEOSContextHandle_t
    private let messages: Unmanaged<MessageBox>

    final class MessageBox {
        var last: String = ""
    }

    /// Creates a context whose error messages are kept for ``takeError(_:)``.
    public init() {
        guard let h = GEOS_init_r() else { fatalError("GEOS_init_r returned NULL (out of memory)") }
        handle = h
        messages = Unmanaged.passRetained(MessageBox())
        GEOSContext_setErrorMessageHandler_r(handle, { message, userdata in
            guard let message, let userdata else { return }
            Unmanaged<MessageBox>.fromOpaque(userdata).takeUnretainedValue().last = String(cString: message)
        }, messages.toOpaque())
        GEOSContext_setNoticeMessageHandler_r(handle, nil, nil)
    }

    deinit {
        GEOS_finish_r(handle)
        messages.release()
    }

    /// The last error GEOS reported on this context, cleared after reading, as a ``GeoError``.
    func takeError(_ fallback: String) -> GeoError {
        let box = messages.takeUnretainedValue()
        let message = box.last.isEmpty ? fallback : box.last
        box.last = ""
        return GeoError(.geos, message)
    }

    /// This thread's context, created on first use and kept for the life of the thread.
    public static var current: GEOSContext {
        ThreadContexts.shared.context()
    }
}

/// One ``GEOSContext`` per thread, through a pthread key; each context is released when its thread ends.
final class ThreadContexts: @unchecked Sendable {
    static let shared = ThreadContexts()
    private var key = pthread_key_t()

    private init() {
        pthread_key_create(&key) { raw in
            guard let raw else { return }
            Unmanaged<GEOSContext>.fromOpaque(raw).release()
        }
    }

    func context() -> GEOSContext {
        if let raw = pthread_getspecific(key) {
            return Unmanaged<GEOSContext>.fromOpaque(raw).takeUnretainedValue()
        }
        let ctx = GEOSContext()
        pthread_setspecific(key, Unmanaged.passRetained(ctx).toOpaque())
        return ctx
    }
}
