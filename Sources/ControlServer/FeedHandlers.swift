import Logging
import Registry

extension RegistryService {
    /// Adds incidents that reached this daemon through the change feed (recorded by another
    /// daemon, or by this one: adding one again replaces it with itself) to the incident index.
    /// If the index is not loaded yet it is loaded now, from PostgreSQL, which includes them.
    public func applyIncidentsFromFeed(_ incidents: [Incident], logger: Logger) async {
        guard store != nil, !incidents.isEmpty else { return }
        do {
            try await incidentIndex().add(incidents)
        } catch {
            logger.error("incidents from the change feed not applied; they are read again at the next load",
                         metadata: ["error": "\(error)", "incidents": "\(incidents.count)"])
        }
    }
}
