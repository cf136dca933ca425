import Crypto
import Foundation
import Postgres
import Registry

/// One audit log entry before it is chained.
public struct AuditEntry: Sendable, Equatable, Codable {
    /// Microseconds since 1970-01-01 UTC (exact, so the hash can be recomputed).
    public var atMicros: Int64
    /// Who (`peer:uid=0`, `token:3`, `anonymous`).
    public var identity: String
    /// The role, or `none` before authentication.
    public var role: String
    /// Where from (`unix:pid=…,uid=…` or `tcp:127.0.0.1:5432`).
    public var peer: String
    /// The request, with secrets removed.
    public var command: String
    public var caseID: String?
    public var purpose: String?
    /// How many records the answer held (cameras, owners, entries), when it holds any.
    public var resultCount: Int?
    /// `ok`, or the error code.
    public var outcome: String

    public init(at: Date, identity: String, role: String, peer: String, command: String, caseID: String?,
                purpose: String?, resultCount: Int?, outcome: String) {
        self.atMicros = Int64((at.timeIntervalSince1970 * 1_000_000).rounded())
        self.identity = identity
        self.role = role
        self.peer = peer
        self.command = command
        self.caseID = caseID
        self.purpose = purpose
        self.resultCount = resultCount
        self.outcome = outcome
    }
}

/// A chained entry as stored.
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int64
    public var entry: AuditEntry
    public var prevHash: [UInt8]
    public var hash: [UInt8]
}

/// The result of checking the chain.
public struct AuditVerification: Sendable, Equatable {
    /// Entries checked.
    public var checked: Int
    /// The last entry's hash (hex), to be kept outside the database as an anchor.
    public var headHash: String?
    /// The first entry that does not match, and why; nil when the chain is intact.
    public var firstBroken: (seq: Int64, reason: String)?

    public static func == (a: AuditVerification, b: AuditVerification) -> Bool {
        a.checked == b.checked && a.headHash == b.headHash && a.firstBroken?.seq == b.firstBroken?.seq
            && a.firstBroken?.reason == b.firstBroken?.reason
    }
}

/// The hash-chained audit log in PostgreSQL (`audit_log`, append-only by trigger).
///
/// `hash = SHA-256(prev_hash ‖ canonical(entry))`, where the first entry's `prev_hash` is 32
/// zero bytes and `canonical` writes `seq, at_us, identity, role, peer, command, case_id,
/// purpose, result_count, outcome` each as `<byte length>:<UTF-8 text>`, or `-` for null.
/// Entries are numbered 1, 2, 3 … without gaps under a transaction-scoped advisory lock, so
/// several daemons extend one chain.
public enum AuditRepository {
    static let lockKey = "7165223423812036417"  // arbitrary, fixed: serialises appends
    static let columns = "seq, at_us, identity, role, peer, command, case_id, purpose, result_count, outcome, encode(prev_hash, 'hex'), encode(hash, 'hex')"

    /// The canonical bytes of an entry (see the type's documentation).
    public static func canonical(seq: Int64, _ e: AuditEntry) -> [UInt8] {
        var out: [UInt8] = []
        func put(_ s: String?) {
            guard let s else { out.append(UInt8(ascii: "-")); return }
            out += Array(String(s.utf8.count).utf8)
            out.append(UInt8(ascii: ":"))
            out += Array(s.utf8)
        }
        put(String(seq)); put(String(e.atMicros)); put(e.identity); put(e.role); put(e.peer); put(e.command)
        put(e.caseID); put(e.purpose); put(e.resultCount.map { String($0) }); put(e.outcome)
        return out
    }

    /// SHA-256(prev ‖ canonical).
    public static func chainHash(prev: [UInt8], seq: Int64, _ e: AuditEntry) -> [UInt8] {
        var h = SHA256()
        h.update(data: prev)
        h.update(data: canonical(seq: seq, e))
        return Array(h.finalize())
    }

    /// Appends entries, in order, in one transaction; returns the last sequence number.
    @discardableResult
    public static func append(_ entries: [AuditEntry], on c: PostgresConnection) throws -> Int64 {
        guard !entries.isEmpty else { return 0 }
        return try c.transaction { c in
            _ = try c.query("SELECT pg_advisory_xact_lock(\(lockKey))")
            var seq: Int64 = 0
            var prev = [UInt8](repeating: 0, count: 32)
            if let last = try c.query("SELECT seq, encode(hash, 'hex') FROM audit_log ORDER BY seq DESC LIMIT 1").rows.first {
                seq = Int64(last[0]!)!
                prev = TokenRepository.unhex(last[1]!)!
            }
            for chunk in stride(from: 0, to: entries.count, by: 400).map({ entries[$0..<min($0 + 400, entries.count)] }) {
                var values: [String] = []
                var params: [String?] = []
                for e in chunk {
                    seq += 1
                    let hash = chainHash(prev: prev, seq: seq, e)
                    let b = params.count
                    values.append("(" + (1...12).map { i in
                        i == 11 || i == 12 ? "decode($\(b + i), 'hex')" : "$\(b + i)"
                    }.joined(separator: ", ") + ")")
                    params += [String(seq), String(e.atMicros), e.identity, e.role, e.peer, e.command, e.caseID, e.purpose,
                               e.resultCount.map { String($0) }, e.outcome, TokenRepository.hex(prev), TokenRepository.hex(hash)]
                    prev = hash
                }
                _ = try c.query("""
                    INSERT INTO audit_log (seq, at_us, identity, role, peer, command, case_id, purpose, result_count, outcome, prev_hash, hash)
                    VALUES \(values.joined(separator: ", "))
                    """, params)
            }
            return seq
        }
    }

    /// Checks the whole chain, oldest first, in pages (memory stays bounded).
    public static func verify(on c: PostgresConnection) throws -> AuditVerification {
        var result = AuditVerification(checked: 0, headHash: nil, firstBroken: nil)
        var expectedSeq: Int64 = 1
        var prev = [UInt8](repeating: 0, count: 32)
        var after: Int64 = 0
        while true {
            let rows = try c.query("SELECT \(columns) FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 5000", [String(after)]).rows
            if rows.isEmpty { break }
            for r in rows {
                let rec = decode(r)
                after = rec.seq
                result.checked += 1
                if rec.seq != expectedSeq {
                    result.firstBroken = (rec.seq, "entries \(expectedSeq)…\(rec.seq - 1) are missing")
                    return result
                }
                if rec.prevHash != prev {
                    result.firstBroken = (rec.seq, "prev_hash does not match the hash of entry \(rec.seq - 1)")
                    return result
                }
                if chainHash(prev: prev, seq: rec.seq, rec.entry) != rec.hash {
                    result.firstBroken = (rec.seq, "the entry's content does not match its hash (changed after it was written)")
                    return result
                }
                prev = rec.hash
                expectedSeq += 1
                result.headHash = TokenRepository.hex(rec.hash)
            }
        }
        return result
    }

    /// Entries matching the filters, oldest first.
    public static func search(identity: String?, caseID: String?, from: Date?, to: Date?, outcome: String?, after: Int64?,
                              limit: Int, on c: PostgresConnection) throws -> [AuditRecord] {
        var conditions: [String] = []
        var params: [String?] = []
        func add(_ sql: String, _ v: String) {
            params.append(v)
            conditions.append(sql.replacingOccurrences(of: "?", with: "$\(params.count)"))
        }
        if let identity { add("identity = ?", identity) }
        if let caseID { add("case_id = ?", caseID) }
        if let from { add("at_us >= ?::bigint", String(Int64((from.timeIntervalSince1970 * 1e6).rounded()))) }
        if let to { add("at_us <= ?::bigint", String(Int64((to.timeIntervalSince1970 * 1e6).rounded()))) }
        if let outcome { add("outcome = ?", outcome) }
        if let after { add("seq > ?::bigint", String(after)) }
        let whereSQL = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try c.query("SELECT \(columns) FROM audit_log \(whereSQL) ORDER BY seq LIMIT \(limit)", params).rows.map(decode)
    }

    static func decode(_ r: [String?]) -> AuditRecord {
        var e = AuditEntry(at: Date(timeIntervalSince1970: 0), identity: r[2]!, role: r[3]!, peer: r[4]!, command: r[5]!,
                           caseID: r[6], purpose: r[7], resultCount: r[8].flatMap { Int($0) }, outcome: r[9]!)
        e.atMicros = Int64(r[1]!)!
        return AuditRecord(seq: Int64(r[0]!)!, entry: e, prevHash: TokenRepository.unhex(r[10] ?? "") ?? [],
                           hash: TokenRepository.unhex(r[11] ?? "") ?? [])
    }
}
