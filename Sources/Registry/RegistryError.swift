/// An error of a registry operation (a write refused, a camera missing, a stale version),
/// mapped by the control server onto a protocol error with the same code.
public struct RegistryError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A stable code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The wire form.
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }
        /// No such camera or owner.
        public static let notFound = Code("not_found")
        /// The row version given is not the current one: someone changed it since it was read.
        public static let conflict = Code("conflict")
        /// A status change that the life cycle does not allow.
        public static let illegalTransition = Code("illegal_transition")
        /// One or more fields are invalid (see `fields`).
        public static let validation = Code("validation_failed")
        /// The camera looks like one already registered by the same owner.
        public static let duplicate = Code("likely_duplicate")
        /// The id is taken.
        public static let alreadyExists = Code("already_exists")
        /// The database cannot be reached; nothing was changed.
        public static let unavailable = Code("unavailable")
        /// The in-memory index cannot hold more (see ``CameraTable/maximumTextBytes``).
        public static let capacity = Code("index_capacity")
    }

    /// The error code.
    public var code: Code
    /// A message for people.
    public var message: String
    /// Every invalid field, for `validation_failed`.
    public var fields: [FieldError]

    public init(_ code: Code, _ message: String, fields: [FieldError] = []) {
        self.code = code
        self.message = message
        self.fields = fields
    }

    public var description: String {
        fields.isEmpty ? "\(code): \(message)" : "\(code): \(message): " + fields.map(\.description).joined(separator: "; ")
    }
}

/// The camera life cycle: which status changes are allowed.
///
/// `pending → active` only by verification; `active ↔ offline`; any status but `retired` →
/// `retired` (with a reason). Retired is final.
public enum Lifecycle {
    /// Whether `from → to` is allowed through a status change (verification is separate).
    public static func canChangeStatus(from: CameraStatus, to: CameraStatus) -> Bool {
        switch (from, to) {
        case (.active, .offline), (.offline, .active): return true
        case (.retired, _): return false
        case (_, .retired): return true
        default: return false
        }
    }

    /// Why a status change is refused, for the error message.
    public static func refusal(from: CameraStatus, to: CameraStatus) -> String {
        switch (from, to) {
        case (.retired, _): return "the camera is retired; retirement is final"
        case (.pending, .active): return "a pending camera becomes active by verification (CAMERA VERIFY)"
        case (let a, let b) where a == b: return "the camera is already \(a.rawValue)"
        default: return "\(from.rawValue) → \(to.rawValue) is not allowed (active ↔ offline, any → retired)"
        }
    }
}
