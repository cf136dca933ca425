/// An error from PostgreSQL or from libpq, with the server's SQLSTATE where there is one.
///
/// Errors are a struct with static codes (as in postgres-nio) so that new codes can be added
/// without breaking `switch` statements of callers.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, at the level of the wrapper.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The connection could not be established.
        public static let connectionFailed = Code(raw: "connection_failed")
        /// The connection was lost or is in a bad state.
        public static let connectionBroken = Code(raw: "connection_broken")
        /// The server answered a query with an error (see `sqlState`).
        public static let server = Code(raw: "server")
        /// libpq refused to send the query or COPY data.
        public static let client = Code(raw: "client")
        /// A result had an unexpected shape (type or column count).
        public static let unexpectedResult = Code(raw: "unexpected_result")
        public var description: String { raw }
    }

    /// The kind of error.
    public var code: Code
    /// The five-character SQLSTATE reported by the server, when the server reported one.
    public var sqlState: String?
    /// The primary message (the server's, or libpq's).
    public var message: String
    /// The server's DETAIL field, if any.
    public var detail: String?

    public init(code: Code, sqlState: String? = nil, message: String, detail: String? = nil) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
    }

    public var description: String {
        var s = "PostgreSQL \(code)"
        if let sqlState { s += " [\(sqlState)]" }
        s += ": \(message)"
        if let detail { s += " (\(detail))" }
        return s
    }

    /// True for `unique_violation` (23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// True for errors that mean the server or the connection went away.
    public var isConnectionError: Bool {
        code == .connectionFailed || code == .connectionBroken || (sqlState?.hasPrefix("08") ?? false)
            || sqlState == "57P01" || sqlState == "57P02" || sqlState == "57P03"
    }
}
