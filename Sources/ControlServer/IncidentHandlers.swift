import ControlProtocol
import Foundation
import Registry

extension RegistryService {
    /// Handles the incident commands. (Placeholder: the incident commands are being added.)
    func handleIncident(_ command: IncidentCommand) async throws -> Reply {
        switch command {
        case .get(let id):
            throw ProtocolError(.notFound, "no incident with id \(id)", field: "id")
        }
    }
}
