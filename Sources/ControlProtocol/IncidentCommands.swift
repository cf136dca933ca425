/// A parsed incident command. (Placeholder: the incident commands are being added.)
public enum IncidentCommand: Sendable, Equatable {
    case get(id: Int64)
}

/// The incident commands of the command table.
enum IncidentCommands {
    static let specs: [CommandSpec] = [
        CommandSpec(words: ["INCIDENT", "GET"], arguments: ["id"], optionalArguments: 0, options: [],
                    summary: "One incident with its candidate cameras.") { args, _, _ throws(ProtocolError) in
            .incident(.get(id: Int64(try Values.int(args[0], field: "id", range: 1...Int(Int64.max)))))
        },
    ]
}
