import Crypto
import Foundation
import Postgres
import Registry

/// An API token's record (never its secret).
public struct APIToken: Sendable, Equatable {
    public var id: Int64
    public var name: String
    /// `admin`, `registrar`, `investigator`, `analyst` or `owner`.
    public var role: String
    /// The owner record an owner token is bound to.
    public var ownerID: Int64?
    public var createdBy: String
    public var createdAt: Date
    public var revokedAt: Date?
    public var revokedBy: String?
}

/// API tokens in PostgreSQL. A token is `camreg_<id>_<secret>`; the secret is 32 random bytes
/// (base64url), shown once. Only a random 16-byte salt and SHA-256(salt ‖ secret) are stored
/// (swift-crypto); checking compares digests in constant time.
public enum TokenRepository {
    static let selectList = """
        id, name, role, owner_id, created_by, extract(epoch from created_at)::float8,
        extract(epoch from revoked_at)::float8, revoked_by
        """

    /// Creates a token; returns its record and the full token text (the only time it exists).
    public static func create(name: String, role: String, ownerID: Int64?, createdBy: String,
                              on c: PostgresConnection) throws -> (APIToken, String) {
        let secret = randomBytes(32)
        let salt = randomBytes(16)
        let hash = digest(salt: salt, secret: secret)
        if let ownerID, try c.query("SELECT 1 FROM owners WHERE id = $1", [String(ownerID)]).rows.isEmpty {
            throw RegistryError(.validation, "no such owner", fields: [FieldError("owner", "no owner with id \(ownerID)")])
        }
        let rows = try c.query("""
            INSERT INTO api_tokens (name, role, owner_id, salt, hash, created_by)
            VALUES ($1, $2, $3::bigint, decode($4, 'hex'), decode($5, 'hex'), $6) RETURNING \(selectList)
            """, [name, role, ownerID.map { String($0) }, hex(salt), hex(hash), createdBy])
        let token = decode(rows.rows[0])
        return (token, "camreg_\(token.id)_\(base64url(secret))")
    }

    /// The token's record if `text` is a valid, unrevoked token; nil otherwise (unknown id,
    /// wrong secret, revoked or malformed — deliberately not told apart).
    public static func authenticate(_ text: String, on c: PostgresConnection) throws -> APIToken? {
        guard let (id, secret) = parse(text) else { return nil }
        guard let row = try c.query("""
            SELECT \(selectList), encode(salt, 'hex'), encode(hash, 'hex') FROM api_tokens WHERE id = $1
            """, [String(id)]).rows.first else { return nil }
        let token = decode(row)
        guard token.revokedAt == nil, let salt = unhex(row[8] ?? ""), let stored = unhex(row[9] ?? "") else { return nil }
        let computed = digest(salt: salt, secret: secret)
        // Constant-time comparison of the digests.
        guard computed.count == stored.count else { return nil }
        var diff: UInt8 = 0
        for (a, b) in zip(computed, stored) { diff |= a ^ b }
        return diff == 0 ? token : nil
    }

    /// Whether a token is still valid (not revoked); used to refuse a revoked token on
    /// connections that authenticated before the revocation.
    public static func isRevoked(id: Int64, on c: PostgresConnection) throws -> Bool {
        try c.query("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE id = $1", [String(id)]).scalar() != "f"
    }

    /// The ids of every revoked token (few: revocation is rare), for daemons that did not revoke
    /// them themselves.
    public static func revokedIDs(on c: PostgresConnection) throws -> Set<Int64> {
        Set(try c.query("SELECT id FROM api_tokens WHERE revoked_at IS NOT NULL").rows.compactMap { $0[0].flatMap { Int64($0) } })
    }

    /// Tokens, newest first.
    public static func list(includeRevoked: Bool, on c: PostgresConnection) throws -> [APIToken] {
        try c.query("SELECT \(selectList) FROM api_tokens \(includeRevoked ? "" : "WHERE revoked_at IS NULL") ORDER BY id DESC")
            .rows.map(decode)
    }

    /// Revokes a token (idempotent); nil when there is no such token.
    public static func revoke(id: Int64, by: String, on c: PostgresConnection) throws -> APIToken? {
        try c.query("""
            UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $2)
            WHERE id = $1 RETURNING \(selectList)
            """, [String(id), by]).rows.first.map(decode)
    }

    /// Splits `camreg_<id>_<secret>`.
    static func parse(_ text: String) -> (Int64, [UInt8])? {
        let parts = text.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "camreg", let id = Int64(parts[1]), id > 0,
              let secret = unbase64url(String(parts[2])), secret.count == 32 else { return nil }
        return (id, secret)
    }

    static func digest(salt: [UInt8], secret: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: salt)
        h.update(data: secret)
        return Array(h.finalize())
    }

    static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    static func decode(_ r: [String?]) -> APIToken {
        APIToken(id: Int64(r[0]!)!, name: r[1]!, role: r[2]!, ownerID: r[3].flatMap { Int64($0) }, createdBy: r[4]!,
                 createdAt: Date(timeIntervalSince1970: Double(r[5]!)!),
                 revokedAt: r[6].flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) }, revokedBy: r[7])
    }

    static func hex(_ b: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(b.count * 2)
        for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out = [UInt8]()
        var i = 0
        while i < u.count {
            guard let a = v(u[i]), let b = v(u[i + 1]) else { return nil }
            out.append(a << 4 | b)
            i += 2
        }
        return out
    }

    static func base64url(_ b: [UInt8]) -> String {
        Data(b).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ s: String) -> [UInt8]? {
        guard s.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95 }) else { return nil }
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while t.utf8.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map(Array.init)
    }
}

extension TokenRepository {
    /// Lower-case hex of bytes (hashes in answers).
    public static func hexString(_ b: [UInt8]) -> String { hex(b) }
}
