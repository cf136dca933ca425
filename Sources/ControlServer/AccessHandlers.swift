import ControlProtocol
import Foundation
import Postgres
import Registry
import RegistryStore

/// `AUTH`, `WHOAMI`, `TOKEN …` and `AUDIT …`, and the owner-scope checks of the handlers.
extension RegistryService {
    /// The owner id an owner-role caller is bound to; nil for every other role.
    func ownerScope() -> Int64? {
        guard let ctx = RequestContext.current, ctx.identity.role == .owner else { return nil }
        return ctx.identity.ownerID ?? -1
    }

    /// Refuses an owner-role caller a record that is not theirs (`forbidden`).
    func requireOwnRecord(_ ownerID: Int64?, what: String) throws {
        guard let own = ownerScope() else { return }
        guard ownerID == own else {
            throw ProtocolError(.forbidden, "an owner sees and edits only their own records; \(what) is not theirs")
        }
    }

    /// The name a change is recorded under in `camera_changes`: a token's identity (with the
    /// `by=` name it gives, if any), else the `by=` name of the daemon's own user.
    static func actor(claimed: String?, default d: String) -> String {
        guard let identity = RequestContext.current?.identity, identity.tokenID != nil else { return claimed ?? d }
        return identity.name + (claimed.map { " (by=\($0))" } ?? "")
    }

    /// Learns the tokens revoked by other daemons on the same database: their connections here
    /// are refused from their next request. Errors (database down) leave the set as it was.
    public func refreshRevokedTokens() async {
        guard let tokens = readStore else { return }
        guard let ids = try? await tokens.withConnection({ try TokenRepository.revokedIDs(on: $0) }) else { return }
        revokedTokens.updateAll { $0.formUnion(ids) }
    }

    /// Calls ``refreshRevokedTokens()`` every `interval` seconds until the task is cancelled.
    public func runRevocationRefresh(interval: Double = 5) async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
            await refreshRevokedTokens()
        }
    }

    func authenticate(_ token: String, session: ConnectionSession) async throws -> Reply {
        guard let tokens = readStore else { throw ProtocolError(.unavailable, "this daemon has no database to check tokens") }
        let found = try await tokens.withConnection { try TokenRepository.authenticate(token, on: $0) }
        guard let found, let role = Role(rawValue: found.role) else {
            throw ProtocolError(.badToken, "the token is unknown, malformed or revoked")
        }
        session.identity = Identity(name: "token:\(found.id)", label: found.name, role: role, tokenID: found.id, ownerID: found.ownerID)
        return ok { w in identityJSON(session, into: &w) }
    }

    func whoami(_ session: ConnectionSession) -> Reply {
        ok { w in identityJSON(session, into: &w) }
    }

    private func identityJSON(_ session: ConnectionSession, into w: inout JSONWriter) {
        let i = session.identity
        w.field("identity", i.name)
        w.field("name", i.label)
        w.field("role", i.role?.rawValue)
        w.field("owner", i.ownerID.map { Int($0) })
        w.field("peer", session.peer)
        w.field("via", session.peerMapped && i.tokenID == nil ? "peer_credentials" : i.tokenID != nil ? "token" : "none")
    }

    func handleToken(_ command: TokenCommand) async throws -> Reply {
        let actor = RequestContext.current?.identity.name ?? "unknown"
        switch command {
        case .create(let role, let name, let ownerID):
            let (token, secret) = try await database().withConnection {
                try TokenRepository.create(name: name, role: role.rawValue, ownerID: ownerID, createdBy: actor, on: $0)
            }
            RequestContext.noteResults(1)
            return ok { w in
                w.key("token")
                Self.tokenJSON(token, into: &w)
                w.field("secret", secret)
                w.field("note", "the secret is shown only now; store it safely")
            }
        case .list(let all):
            let tokens = try await database().withConnection { try TokenRepository.list(includeRevoked: all, on: $0) }
            RequestContext.noteResults(tokens.count)
            return ok { w in
                w.field("count", tokens.count)
                w.key("tokens")
                w.array { a in for t in tokens { Self.tokenJSON(t, into: &a) } }
            }
        case .revoke(let id):
            let token = try await database().withConnection { try TokenRepository.revoke(id: id, by: actor, on: $0) }
            guard let token else { throw ProtocolError(.notFound, "no token with id \(id)", field: "id") }
            revokedTokens.updateAll { _ = $0.insert(id) }
            return ok { w in
                w.key("token")
                Self.tokenJSON(token, into: &w)
            }
        }
    }

    static func tokenJSON(_ t: APIToken, into w: inout JSONWriter) {
        w.object { o in
            o.field("id", Int(t.id))
            o.field("identity", "token:\(t.id)")
            o.field("name", t.name)
            o.field("role", t.role)
            o.field("owner", t.ownerID.map { Int($0) })
            o.field("created_by", t.createdBy)
            o.field("created_at", ISO8601Text.format(t.createdAt))
            o.field("revoked_at", t.revokedAt.map(ISO8601Text.format))
            o.field("revoked_by", t.revokedBy)
        }
    }

    func handleAudit(_ command: AuditCommand) async throws -> Reply {
        switch command {
        case .verify:
            // Entries of requests answered so far are durable before their replies; verify what is in the table.
            let v = try await database().withConnection { try AuditRepository.verify(on: $0) }
            logger.notice("audit chain verified", metadata: ["checked": "\(v.checked)", "head": "\(v.headHash ?? "-")",
                                                            "broken": "\(v.firstBroken.map { String($0.seq) } ?? "none")"])
            return ok { w in
                w.field("intact", v.firstBroken == nil)
                w.field("checked", v.checked)
                w.field("head_hash", v.headHash)
                if let b = v.firstBroken {
                    w.key("first_broken")
                    w.object { o in
                        o.field("seq", Int(b.seq))
                        o.field("reason", b.reason)
                    }
                }
            }
        case .search(let q):
            let from = try q.from.map { try Self.time($0, field: "from") }
            let to = try q.to.map { try Self.time($0, field: "to") }
            let records = try await database().withConnection {
                try AuditRepository.search(identity: q.identity, caseID: q.caseID, from: from, to: to, outcome: q.outcome,
                                           after: q.after, limit: q.limit + 1, on: $0)
            }
            let shown = records.prefix(q.limit)
            RequestContext.noteResults(shown.count)
            return ok { w in
                w.field("count", shown.count)
                w.key("entries")
                w.array { a in
                    for r in shown {
                        a.object { o in
                            o.field("seq", Int(r.seq))
                            o.field("at", ISO8601Text.format(Date(timeIntervalSince1970: Double(r.entry.atMicros) / 1e6)))
                            o.field("identity", r.entry.identity)
                            o.field("role", r.entry.role)
                            o.field("peer", r.entry.peer)
                            o.field("command", r.entry.command)
                            o.field("case", r.entry.caseID)
                            o.field("purpose", r.entry.purpose)
                            o.field("result_count", r.entry.resultCount)
                            o.field("outcome", r.entry.outcome)
                            o.field("hash", TokenRepository.hexString(r.hash))
                        }
                    }
                }
                w.field("next_cursor", records.count > q.limit ? shown.last.map { Int($0.seq) } : nil)
            }
        }
    }
}
