/// A structured error sent to a client as `{"ok":false,"error":{"code":…,"message":…,"field":…}}`.
///
/// Codes are static members of a struct (as in postgres-nio) so that adding one breaks nobody;
/// every code a client can receive is listed in `docs/protocol.md`.
public struct ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A stable, machine-readable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as sent on the wire.
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The line is longer than the maximum (the connection is closed after this error).
        public static let lineTooLong = Code("line_too_long")
        /// The line is not valid UTF-8.
        public static let invalidUTF8 = Code("invalid_utf8")
        /// The line holds a NUL or another control character.
        public static let controlCharacter = Code("control_character")
        /// A quoted value is not closed, or a backslash escape is unknown.
        public static let badQuoting = Code("bad_quoting")
        /// The line is empty.
        public static let emptyRequest = Code("empty_request")
        /// No command of that name.
        public static let unknownCommand = Code("unknown_command")
        /// Too few or too many positional arguments.
        public static let wrongArity = Code("wrong_arity")
        /// An option (`key=value`) the command does not take.
        public static let unknownOption = Code("unknown_option")
        /// An option given twice.
        public static let duplicateOption = Code("duplicate_option")
        /// A required option is missing.
        public static let missingOption = Code("missing_option")
        /// A value that should be a number is not one.
        public static let notANumber = Code("not_a_number")
        /// NaN or infinity where a finite number is needed.
        public static let notFinite = Code("not_finite")
        /// A number outside its allowed range (latitude, longitude, limit, …).
        public static let outOfRange = Code("out_of_range")
        /// A radius of zero or less.
        public static let radiusNotPositive = Code("radius_not_positive")
        /// A radius over the server's maximum.
        public static let radiusTooLarge = Code("radius_too_large")
        /// A value that is malformed for its field (e.g. a camera id).
        public static let invalidValue = Code("invalid_value")
        /// The thing asked for does not exist.
        public static let notFound = Code("not_found")
        /// One or more fields of a write are invalid (all listed in `fields`).
        public static let validationFailed = Code("validation_failed")
        /// The row version given is stale: the record changed since it was read.
        public static let conflict = Code("conflict")
        /// A status change the camera life cycle does not allow.
        public static let illegalTransition = Code("illegal_transition")
        /// A camera of the same owner within 3 m facing the same way exists (send distinct=yes).
        public static let likelyDuplicate = Code("likely_duplicate")
        /// The id is already taken.
        public static let alreadyExists = Code("already_exists")
        /// A time that is not ISO-8601 (`2022-06-26T06:40+07:00`).
        public static let badTime = Code("bad_time")
        /// A time without a UTC offset (ambiguous: write +07:00 or Z).
        public static let timeWithoutOffset = Code("time_without_offset")
        /// `from` is after `to`.
        public static let badTimeWindow = Code("bad_time_window")
        /// A time window longer than the server's maximum (7 days by default).
        public static let timeWindowTooLong = Code("time_window_too_long")
        /// An empty, invalid (e.g. self-intersecting, with GEOS's reason) or unreadable geometry.
        public static let invalidGeometry = Code("invalid_geometry")
        /// A route with fewer than 2 points.
        public static let routeTooShort = Code("route_too_short")
        /// `IMPORT DATA`/`COMMIT` without `IMPORT BEGIN` on this connection.
        public static let noUpload = Code("no_upload")
        /// An uploaded file that cannot be read at all (no header, not JSON, …).
        public static let badFile = Code("bad_file")
        /// The server cannot serve the request now (e.g. the database is down for a write).
        public static let unavailable = Code("unavailable")
        /// The command needs an authenticated connection: send `AUTH <token>` first.
        public static let unauthenticated = Code("unauthenticated")
        /// The token is unknown, malformed or revoked.
        public static let badToken = Code("bad_token")
        /// The caller's role may not run this command, or not on this record.
        public static let forbidden = Code("forbidden")
        /// An investigator's request without `case=<id>`.
        public static let caseRequired = Code("case_required")
        /// A search broader than a configured bound (area, route length, result count…); the
        /// message and `field` name the bound.
        public static let requestTooBroad = Code("request_too_broad")
        /// Too many requests for this identity; wait and retry (the message says how long).
        public static let rateLimited = Code("rate_limited")
        /// The server holds its maximum number of connections; this one is closed.
        public static let tooManyConnections = Code("too_many_connections")
        /// No request for longer than the idle timeout; the connection is closed.
        public static let idleTimeout = Code("idle_timeout")
        /// The audit log cannot be written, so the request (which must be audited) is refused.
        public static let auditUnavailable = Code("audit_unavailable")
        /// A bug or an unexpected failure inside the server.
        public static let `internal` = Code("internal")
    }

    /// One invalid field of a request: its name and why.
    public struct FieldIssue: Equatable, Sendable {
        public var field: String
        public var reason: String
        public init(field: String, reason: String) {
            self.field = field
            self.reason = reason
        }
    }

    /// The error code.
    public var code: Code
    /// A message for people.
    public var message: String
    /// The request field the error is about, when there is one.
    public var field: String?
    /// Every invalid field, when several are reported at once (`validation_failed`).
    public var fields: [FieldIssue] = []

    public init(_ code: Code, _ message: String, field: String? = nil, fields: [FieldIssue] = []) {
        self.code = code
        self.message = message
        self.field = field ?? fields.first?.field
        self.fields = fields
    }

    public var description: String { "\(code): \(message)" }

    /// The error as one JSON response line (without the newline).
    public var json: String {
        var w = JSONWriter()
        w.object {
            $0.field("ok", false)
            $0.key("error")
            $0.object { e in
                e.field("code", code.rawValue)
                e.field("message", message)
                if let field { e.field("field", field) }
                if !fields.isEmpty {
                    e.key("fields")
                    e.array { a in
                        for f in fields {
                            a.object { o in
                                o.field("field", f.field)
                                o.field("reason", f.reason)
                            }
                        }
                    }
                }
            }
        }
        return w.string
    }
}
