import Foundation
import Postgres
import Registry

/// Owners in PostgreSQL. Writes run in a transaction and use the row version for optimistic
/// concurrency, like cameras.
public enum OwnerRepository {
    static let selectList = """
        id, kind, name, phone, email, address, ward, consent_granted, consent_valid_until::text, consent_note,
        extract(epoch from created_at)::float8, extract(epoch from updated_at)::float8, version
        """

    /// Adds an owner (normalised and validated first); returns it with its id.
    public static func add(_ owner: Owner, on c: PostgresConnection) throws -> Owner {
        let o = owner.normalized()
        let errors = o.validate().filter { $0.field != "id" }
        guard errors.isEmpty else { throw RegistryError(.validation, "the owner is not valid", fields: errors) }
        let rows = try c.query("""
            INSERT INTO owners (kind, name, phone, email, address, ward, consent_granted, consent_valid_until, consent_note)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::date, $9) RETURNING \(selectList)
            """, values(o))
        return decode(rows.rows[0])
    }

    /// One owner by id.
    public static func get(id: Int64, on c: PostgresConnection) throws -> Owner? {
        try c.query("SELECT \(selectList) FROM owners WHERE id = $1", [String(id)]).rows.first.map(decode)
    }

    /// Applies `edit` to the owner if `expectedVersion` is current (else `conflict`, nothing changed).
    public static func update(id: Int64, expectedVersion: Int, on c: PostgresConnection, edit: (inout Owner) throws -> Void) throws -> Owner {
        try c.transaction { c in
            guard let row = try c.query("SELECT \(selectList) FROM owners WHERE id = $1 FOR UPDATE", [String(id)]).rows.first else {
                throw RegistryError(.notFound, "no owner with id \(id)")
            }
            let current = decode(row)
            guard current.version == expectedVersion else {
                throw RegistryError(.conflict, "owner \(id) is at version \(current.version), not \(expectedVersion): read it again")
            }
            var next = current
            try edit(&next)
            next.id = current.id
            next.version = current.version
            next = next.normalized()
            let errors = next.validate()
            guard errors.isEmpty else { throw RegistryError(.validation, "the update is not valid", fields: errors) }
            let rows = try c.query("""
                UPDATE owners SET kind = $1, name = $2, phone = $3, email = $4, address = $5, ward = $6,
                    consent_granted = $7, consent_valid_until = $8::date, consent_note = $9,
                    updated_at = greatest(now(), created_at), version = version + 1
                WHERE id = $10 RETURNING \(selectList)
                """, values(next) + [String(id)])
            return decode(rows.rows[0])
        }
    }

    /// Every owner's consent, by owner id (for the search answers).
    public static func allConsents(on c: PostgresConnection) throws -> [Int64: Consent] {
        var out: [Int64: Consent] = [:]
        for r in try c.query("SELECT \(selectList) FROM owners").rows {
            let o = decode(r)
            if let id = o.id { out[id] = o.consent }
        }
        return out
    }

    /// Number of cameras each owner holds that are not retired.
    public static func cameraCount(ownerID: Int64, on c: PostgresConnection) throws -> Int {
        Int(try c.query("SELECT count(*) FROM cameras WHERE owner_id = $1 AND status <> 'retired'", [String(ownerID)]).scalar() ?? "0") ?? 0
    }

    static func values(_ o: Owner) -> [String?] {
        [o.kind.rawValue, o.name, o.phone, o.email, o.address, o.ward, o.consent.granted ? "true" : "false",
         o.consent.validUntil.map { String(ISO8601Text.format($0).prefix(10)) }, o.consent.note]
    }

    static func decode(_ r: [String?]) -> Owner {
        let until: Date? = r[8].flatMap { s in
            let p = s.split(separator: "-").compactMap { Int($0) }
            return p.count == 3 ? Consent.day(year: p[0], month: p[1], day: p[2]) : nil
        }
        return Owner(id: Int64(r[0]!), kind: OwnerKind(rawValue: r[1]!) ?? .household, name: r[2]!, phone: r[3]!,
                     email: r[4], address: r[5]!, ward: r[6]!,
                     consent: Consent(granted: r[7] == "t", validUntil: until, note: r[9]),
                     createdAt: Date(timeIntervalSince1970: Double(r[10]!)!),
                     updatedAt: Date(timeIntervalSince1970: Double(r[11]!)!), version: Int(r[12]!)!)
    }
}
