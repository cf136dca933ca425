/// Bulk import over the control socket. A file is uploaded in base64 chunks on one connection
/// (`IMPORT BEGIN`, `IMPORT DATA` …, `IMPORT COMMIT`), so that any client — over the Unix
/// socket or TCP — can send it, and a progress bar can follow the bytes sent.
enum ImportCommands {
    /// The camera fields whose CSV column can be renamed with `col_<field>=<header>`.
    static let mappableFields = [
        "id", "lat", "lon", "site_kind", "address", "ward", "heading", "fov", "range_m", "mount_height_m",
        "owner_kind", "owner_name", "owner_phone", "schedule", "retention_days", "status",
    ]

    static let formats = ["csv", "geojson", "osm-json", "osm-xml"] + CoverageCommands.layerFormats

    static let specs: [CommandSpec] = [
        CommandSpec(words: ["IMPORT", "BEGIN"], access: .registrarUpload, arguments: [], optionalArguments: 0,
                    options: [
                        OptionSpec(name: "format", placeholder: "<csv|geojson|osm-json|osm-xml|wards-geojson|streets-geojson>", required: true, summary: "The file's format."),
                        OptionSpec(name: "all_or_nothing", placeholder: "<yes|no>", required: false,
                                   summary: "Import nothing if any row is bad (default no: import the good rows, report the bad)."),
                        OptionSpec(name: "separator", placeholder: "<char>", required: false, summary: "CSV separator (default ,)."),
                        OptionSpec(name: "by", placeholder: "<name>", required: false, summary: "Who imports (recorded in the change log)."),
                        OptionSpec(name: "name_property", placeholder: "<property>", required: false, summary: "wards-geojson: the property holding the ward name."),
                    ] + mappableFields.map {
                        OptionSpec(name: "col_\($0)", placeholder: "<header>", required: false, summary: "CSV column holding \($0) (default \($0)).")
                    },
                    summary: "Starts uploading a CSV, GeoJSON or OpenStreetMap file of cameras on this connection.") { _, options, _ throws(ProtocolError) in
            let format = options["format"]!.lowercased()
            guard formats.contains(format) else {
                throw ProtocolError(.invalidValue, "format must be one of \(formats.joined(separator: ", "))", field: "format")
            }
            if let a = options["all_or_nothing"], !["yes", "no", "true", "false"].contains(a.lowercased()) {
                throw ProtocolError(.invalidValue, "all_or_nothing must be yes or no", field: "all_or_nothing")
            }
            if let sep = options["separator"], sep.unicodeScalars.count != 1 {
                throw ProtocolError(.invalidValue, "separator must be one character", field: "separator")
            }
            return .importBegin(format: format, options: options)
        },
        CommandSpec(words: ["IMPORT", "DATA"], access: .registrarUpload, arguments: [], optionalArguments: 0,
                    options: [OptionSpec(name: "data", placeholder: "<base64>", required: true,
                                         summary: "The next chunk of the file, base64 (the line stays under 64 KiB: ≤ 48,000 bytes a chunk).")],
                    summary: "Appends a chunk to the upload.") { _, options, _ in
            .importData(base64: options["data"]!)
        },
        CommandSpec(words: ["IMPORT", "COMMIT"], access: .registrarWrite, arguments: [], optionalArguments: 0, options: [],
                    summary: "Loads the uploaded file in one transaction; reports imported and refused rows.") { _, _, _ in .importCommit },
        CommandSpec(words: ["IMPORT", "ABORT"], access: .registrarUpload, arguments: [], optionalArguments: 0, options: [],
                    summary: "Drops the upload.") { _, _, _ in .importAbort },
    ]
}
