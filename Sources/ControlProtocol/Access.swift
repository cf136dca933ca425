/// A caller's role. Every command's row in ``CommandTable`` lists the roles that may run it
/// (``Access``); the daemon enforces it before the handler runs, and `HELP` lists only what
/// the caller may run.
public enum Role: String, CaseIterable, Sendable, Comparable {
    /// A camera owner: sees and edits only their own cameras and owner record.
    case owner
    /// Coverage and statistics: cameras without owner data.
    case analyst
    /// Police investigator: searches with owner contact details, bound to a case (`case=`).
    case investigator
    /// Registrar: registers, verifies and updates cameras and owners, imports.
    case registrar
    /// Administrator: everything, including tokens and the audit log.
    case admin

    private var rank: Int { Role.allCases.firstIndex(of: self)! }

    /// The role's bit in ``Access``'s bit sets.
    var bit: UInt8 {
        switch self {
        case .owner: 1
        case .analyst: 2
        case .investigator: 4
        case .registrar: 8
        case .admin: 16
        }
    }
    public static func < (a: Role, b: Role) -> Bool { a.rank < b.rank }
}

/// When a command leaves an entry in the audit log.
public enum AuditClass: String, Sendable, Equatable {
    /// Never (PING, HELP, STATS …) — unless it is refused by access control.
    case never
    /// When the answer discloses owner data (names, phones, addresses, owner records).
    case ownerData
    /// Always: the command changes something or touches tokens and the audit log.
    case always
}

/// Who may run a command, whether it must carry a case number, and when it is audited.
public struct Access: Sendable, Equatable {
    /// Roles allowed to run the command; `nil` means anyone, even before `AUTH`.
    public let roles: Set<Role>?
    /// Roles that must give `case=<id>` (purpose binding).
    public let caseRequired: Set<Role>
    /// When the command is written to the audit log.
    public let audit: AuditClass
    /// ``roles`` and ``caseRequired`` as bit sets (``Role/bit``): every request is checked
    /// against them, and a bit test costs nothing where a `Set` lookup hashes.
    private let allowedBits: UInt8
    private let caseBits: UInt8

    public init(roles: Set<Role>?, caseRequired: Set<Role> = [], audit: AuditClass) {
        self.roles = roles
        self.caseRequired = caseRequired
        self.audit = audit
        allowedBits = roles?.reduce(0) { $0 | $1.bit } ?? 0
        caseBits = caseRequired.reduce(0) { $0 | $1.bit }
    }

    /// Whether `role` (nil: not authenticated) may run the command.
    public func allows(_ role: Role?) -> Bool {
        guard roles != nil else { return true }
        guard let role else { return false }
        return allowedBits & role.bit != 0
    }

    /// Whether `role` must give `case=<id>` for the command (``caseRequired``).
    public func requiresCase(_ role: Role) -> Bool {
        caseBits & role.bit != 0
    }

    /// PING, HELP, AUTH, WHOAMI, QUIT: anyone, never audited.
    public static let open = Access(roles: nil, audit: .never)
    /// Investigator searches (NEAR, NEAREST, ALONG, WITHIN): investigators with a case,
    /// analysts (without owner data), registrars and admins.
    public static let search = Access(roles: [.investigator, .analyst, .registrar, .admin], caseRequired: [.investigator], audit: .ownerData)
    /// CAMERA GET: every role; owners only their own cameras.
    public static let cameraRead = Access(roles: Set(Role.allCases), caseRequired: [.investigator], audit: .ownerData)
    /// CAMERA LIST: owners (their own cameras), analysts, registrars, admins.
    public static let listing = Access(roles: [.owner, .analyst, .registrar, .admin], audit: .ownerData)
    /// CAMERA EXPORT: bulk files for analysts, registrars and admins.
    public static let export = Access(roles: [.analyst, .registrar, .admin], audit: .ownerData)
    /// Writes an owner may make to their own records (CAMERA REGISTER/UPDATE/STATUS, OWNER UPDATE).
    public static let ownerWrite = Access(roles: [.owner, .registrar, .admin], audit: .always)
    /// Writes only registrars and admins make (OWNER ADD, CAMERA VERIFY, IMPORT COMMIT).
    public static let registrarWrite = Access(roles: [.registrar, .admin], audit: .always)
    /// Steps of a registrar's upload that change nothing yet (IMPORT BEGIN/DATA/ABORT).
    public static let registrarUpload = Access(roles: [.registrar, .admin], audit: .never)
    /// OWNER GET: the owner themself, investigators with a case, registrars, admins.
    public static let ownerRead = Access(roles: [.owner, .investigator, .registrar, .admin], caseRequired: [.investigator], audit: .ownerData)
    /// Recording incidents (INCIDENT ADD, INCIDENT IMPORT COMMIT): investigators with a case, admins.
    public static let incidentWrite = Access(roles: [.investigator, .admin], caseRequired: [.investigator], audit: .always)
    /// Steps of an incident upload that change nothing yet.
    public static let incidentUpload = Access(roles: [.investigator, .admin], audit: .never)
    /// Reading incidents (and their candidate cameras).
    public static let incidentRead = Access(roles: [.investigator, .analyst, .registrar, .admin], caseRequired: [.investigator], audit: .ownerData)
    /// Starting or cancelling a coverage analysis (it stores a run): analysts, registrars, admins.
    public static let analysisRun = Access(roles: [.analyst, .registrar, .admin], audit: .always)
    /// Coverage results, maps, layers and job progress (no owner data).
    public static let analysisRead = Access(roles: [.analyst, .registrar, .admin], audit: .never)
    /// STATS: every staff role.
    public static let staff = Access(roles: [.analyst, .investigator, .registrar, .admin], audit: .never)
    /// Tokens and the audit log: admins only, always audited.
    public static let admin = Access(roles: [.admin], audit: .always)
}

/// Options every command accepts besides its own: the case number and purpose of the request,
/// recorded in the audit log (`case=` is mandatory where ``Access/caseRequired`` says so).
public enum EnvelopeOptions {
    /// Whether `name` is an envelope option, `case` or `purpose` (compared, not hashed: this
    /// runs for every option of every request).
    @inline(__always)
    static func isEnvelope(_ name: String) -> Bool { name == "case" || name == "purpose" }

    /// Checks a case id: 1–64 printable characters without spaces (e.g. `BC-2026-0142`).
    public static func caseID(_ s: String) throws(ProtocolError) -> String {
        guard !s.isEmpty, s.utf8.count <= 64, s.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }) else {
            throw ProtocolError(.invalidValue, "case must be 1–64 characters without spaces (like BC-2026-0142), not \(Values.clip(s))", field: "case")
        }
        return s
    }

    /// Checks a purpose: at most 500 characters.
    public static func purpose(_ s: String) throws(ProtocolError) -> String {
        guard s.count <= 500 else {
            throw ProtocolError(.invalidValue, "purpose must be at most 500 characters", field: "purpose")
        }
        return s
    }
}

/// A parsed request: the command, its table row, and the envelope options.
public struct Request: Sendable {
    /// The typed command.
    public var command: Command
    /// The command's row in the table (name, access).
    public var spec: CommandSpec
    /// `case=`, when given.
    public var caseID: String?
    /// `purpose=`, when given.
    public var purpose: String?
}

/// Token and audit commands (admins).
public enum TokenCommand: Sendable, Equatable {
    /// `TOKEN CREATE role=… name=… [owner=<id>]`: prints the secret once.
    case create(role: Role, name: String, ownerID: Int64?)
    /// `TOKEN LIST [all=yes]`.
    case list(includeRevoked: Bool)
    /// `TOKEN REVOKE <id>`.
    case revoke(id: Int64)
}

/// The audit log's commands (admins).
public enum AuditCommand: Sendable, Equatable {
    /// `AUDIT VERIFY`: checks the whole hash chain.
    case verify
    /// `AUDIT SEARCH [identity=…] [case=…] [from=…] [to=…] [after=<seq>] [limit=<n>]`.
    case search(AuditQuery)
}

/// Filters of `AUDIT SEARCH`.
public struct AuditQuery: Sendable, Equatable {
    public var identity: String?
    public var caseID: String?
    public var from: String?
    public var to: String?
    public var outcome: String?
    public var after: Int64?
    public var limit: Int
    public init(identity: String? = nil, caseID: String? = nil, from: String? = nil, to: String? = nil,
                outcome: String? = nil, after: Int64? = nil, limit: Int = 100) {
        self.identity = identity
        self.caseID = caseID
        self.from = from
        self.to = to
        self.outcome = outcome
        self.after = after
        self.limit = limit
    }
}

/// The access-control commands.
enum AccessCommands {
    static let specs: [CommandSpec] = [
        CommandSpec(words: ["AUTH"], access: .open, arguments: ["token"], optionalArguments: 0, options: [],
                    summary: "Authenticates this connection with an API token (camreg_<id>_<secret>).") { args, _, _ in
            .auth(token: args[0])
        },
        CommandSpec(words: ["WHOAMI"], access: .open, arguments: [], optionalArguments: 0, options: [],
                    summary: "The identity and role of this connection.") { _, _, _ in .whoami },
        CommandSpec(words: ["TOKEN", "CREATE"], access: .admin, arguments: [], optionalArguments: 0,
                    options: [
                        .opt("role", "<admin|registrar|investigator|analyst|owner>", "The token's role.", required: true),
                        .opt("name", "<text>", "Whose token it is (a person or a system).", required: true),
                        .opt("owner", "<id>", "The owner record an owner token is bound to (role=owner only)."),
                    ],
                    summary: "Creates an API token; the answer holds the secret, shown this once.") { _, o, _ throws(ProtocolError) in
            guard let role = Role(rawValue: o["role"]!.lowercased()) else {
                throw ProtocolError(.invalidValue, "role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", ")), not \(Values.clip(o["role"]!))", field: "role")
            }
            let name = o["name"]!.trimmingSpaces
            guard !name.isEmpty, name.count <= 200 else {
                throw ProtocolError(.invalidValue, "name must be 1–200 characters", field: "name")
            }
            let owner = try o["owner"].map { v throws(ProtocolError) in Int64(try Values.int(v, field: "owner", range: 1...Int.max)) }
            if role == .owner, owner == nil {
                throw ProtocolError(.missingOption, "an owner token needs owner=<id>", field: "owner")
            }
            if role != .owner, owner != nil {
                throw ProtocolError(.invalidValue, "owner= is only for role=owner", field: "owner")
            }
            return .token(.create(role: role, name: name, ownerID: owner))
        },
        CommandSpec(words: ["TOKEN", "LIST"], access: .admin, arguments: [], optionalArguments: 0,
                    options: [.opt("all", "<yes|no>", "Include revoked tokens (default no).")],
                    summary: "Lists API tokens (never their secrets).") { _, o, _ throws(ProtocolError) in
            .token(.list(includeRevoked: try Values.yesNo(o["all"], field: "all") ?? false))
        },
        CommandSpec(words: ["TOKEN", "REVOKE"], access: .admin, arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "Revokes a token at once; connections using it are refused from their next request.") { args, _, _ throws(ProtocolError) in
            .token(.revoke(id: Int64(try Values.int(args[0], field: "id", range: 1...Int.max))))
        },
        CommandSpec(words: ["AUDIT", "VERIFY"], access: .admin, arguments: [], optionalArguments: 0, options: [],
                    summary: "Checks the audit log's hash chain from the first entry; names the first broken one.") { _, _, _ in
            .audit(.verify)
        },
        CommandSpec(words: ["AUDIT", "SEARCH"], access: .admin, arguments: [], optionalArguments: 0,
                    options: [
                        .opt("identity", "<name>", "Only entries of this identity (as in WHOAMI)."),
                        .opt("case_id", "<id>", "Only entries of this case."),
                        .opt("from", "<time>", "Entries at or after this time (ISO-8601 with offset)."),
                        .opt("to", "<time>", "Entries at or before this time."),
                        .opt("outcome", "<ok|code>", "Only entries with this outcome (ok, forbidden, …)."),
                        .opt("after", "<seq>", "Entries after this sequence number (the previous page's next_cursor)."),
                        .opt("limit", "<n>", "At most this many entries (1–1000, default 100)."),
                    ],
                    summary: "Searches the audit log by identity, case, time and outcome, oldest first.") { _, o, _ throws(ProtocolError) in
            var q = AuditQuery()
            q.identity = o["identity"]
            q.caseID = try o["case_id"].map { v throws(ProtocolError) in try EnvelopeOptions.caseID(v) }
            q.from = o["from"]
            q.to = o["to"]
            q.outcome = o["outcome"]
            q.after = try o["after"].map { v throws(ProtocolError) in Int64(try Values.int(v, field: "after", range: 0...Int.max)) }
            q.limit = try o["limit"].map { v throws(ProtocolError) in try Values.int(v, field: "limit", range: 1...1000) } ?? 100
            return .audit(.search(q))
        },
    ]
}

extension Values {
    /// `yes`/`no` (also `true`/`false`, `1`/`0`); nil when absent.
    static func yesNo(_ s: String?, field: String) throws(ProtocolError) -> Bool? {
        guard let s else { return nil }
        switch s.lowercased() {
        case "yes", "true", "1": return true
        case "no", "false", "0": return false
        default: throw ProtocolError(.invalidValue, "\(field) must be yes or no, not \(clip(s))", field: field)
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}
