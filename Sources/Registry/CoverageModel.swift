import Foundation

// Inputs and outputs of the coverage-gap analysis (issue 4). The computation is in
// CoverageEngine.swift; persistence in RegistryStore/CoverageRepository.swift.

/// A ward polygon of the reference layer: a name and a WGS84 `POLYGON`/`MULTIPOLYGON` (WKT,
/// x = longitude, y = latitude).
public struct CoverageWard: Sendable, Equatable {
    /// The ward's name (unique in the layer).
    public var name: String
    /// Its boundary, WKT in lon/lat.
    public var wkt: String
    public init(name: String, wkt: String) {
        self.name = name
        self.wkt = wkt
    }
}

/// A street of the reference network: a polyline with an optional name and a kind
/// (`arterial`, `street`, `alley`; alleys provide candidate sites for suggestions).
public struct CoverageStreet: Sendable, Equatable {
    public var name: String?
    public var kind: String
    /// Vertices in order (WGS84 degrees), at least 2.
    public var points: [LatLonPoint]
    public init(name: String?, kind: String, points: [LatLonPoint]) {
        self.name = name
        self.kind = kind
        self.points = points
    }

    /// The demo layout's street as a layer street.
    public init(_ s: Street) {
        self.init(name: s.name, kind: s.kind.rawValue, points: s.points.map { LatLonPoint(lat: $0.lat, lon: $0.lon) })
    }
}

/// A WGS84 position (degrees).
public struct LatLonPoint: Sendable, Equatable, Hashable {
    public var lat: Double
    public var lon: Double
    public init(lat: Double, lon: Double) {
        self.lat = lat
        self.lon = lon
    }
}

/// An incident as the coverage analysis sees it: a representative point (the centre of its
/// bounding box) and the end of its time window.
public struct CoverageIncident: Sendable, Equatable {
    public var id: Int64
    public var lat: Double
    public var lon: Double
    public var time: Date
    public init(id: Int64, lat: Double, lon: Double, time: Date) {
        self.id = id
        self.lat = lat
        self.lon = lon
        self.time = time
    }
}

/// What to analyse and how.
public struct CoverageParameters: Sendable, Equatable {
    /// Only this ward (by name); `nil` = every ward.
    public var ward: String?
    /// When set, a camera counts only if its recording schedule is on at this instant.
    public var at: Date?
    /// The end of the incident window (`at` if given, else the time the run started).
    public var referenceDate: Date
    /// Incidents of the last `days` days before ``referenceDate`` weigh the gaps.
    public var days: Int
    /// Cameras whose range is shorter than this (metres) are not counted (0 = all).
    public var minRange: Double
    /// How many new camera sites to suggest (0 = none).
    public var suggest: Int
    /// Range (m) and field of view (degrees) of a suggested camera's standard sector.
    public var suggestRange: Double
    public var suggestFOV: Double
    /// Headings tried for each candidate site (evenly spaced).
    public var headings: Int
    /// Candidate sites along alleys every this many metres.
    public var alleySpacing: Double
    /// An unseen incident weighs an uncovered stretch within this distance (m).
    public var incidentRadius: Double
    /// Side of the square tiles the wards are cut into (m): memory stays bounded by one tile.
    public var tileSize: Double
    /// Build the per-ward map features (GeoJSON) for `--geojson`/`--svg`.
    public var map: Bool
    /// Stretches kept in the ranked list.
    public var stretchLimit: Int
    /// Threads computing tiles (0 = one per core).
    public var threads: Int

    public init(ward: String? = nil, at: Date? = nil, referenceDate: Date = Date(), days: Int = 90, minRange: Double = 0,
                suggest: Int = 0, suggestRange: Double = 40, suggestFOV: Double = 90, headings: Int = 36,
                alleySpacing: Double = 25, incidentRadius: Double = 50, tileSize: Double = 2000, map: Bool = true,
                stretchLimit: Int = 100, threads: Int = 0) {
        self.ward = ward
        self.at = at
        self.referenceDate = referenceDate
        self.days = days
        self.minRange = minRange
        self.suggest = suggest
        self.suggestRange = suggestRange
        self.suggestFOV = suggestFOV
        self.headings = headings
        self.alleySpacing = alleySpacing
        self.incidentRadius = incidentRadius
        self.tileSize = tileSize
        self.map = map
        self.stretchLimit = stretchLimit
        self.threads = threads
    }
}

/// The figures of one ward (or, summed, of the town).
public struct CoverageFigures: Sendable, Equatable {
    /// The ward's name (the town row uses ``CoverageResult/townName``).
    public var ward: String
    /// Counted cameras standing in the ward.
    public var cameras: Int = 0
    /// Street length in the ward and the part some camera sees, metres.
    public var streetLength: Double = 0
    public var coveredLength: Double = 0
    /// The ward's area and the part some camera sees, m².
    public var area: Double = 0
    public var coveredArea: Double = 0
    /// Intersections (network nodes of degree ≥ 3) in the ward, and how many cameras see them.
    public var intersections: Int = 0
    public var unseenIntersections: Int = 0
    public var singleIntersections: Int = 0
    public var multiIntersections: Int = 0
    /// Incidents of the window in the ward, and those no counted camera sees.
    public var incidents: Int = 0
    public var unseenIncidents: Int = 0
    /// Σ over uncovered stretches of length (km) × (1 + unseen incidents within the incident radius).
    public var gapScore: Double = 0

    public init(ward: String) { self.ward = ward }

    /// Covered share of the street length (0 when there are no streets).
    public var coveredShare: Double { streetLength > 0 ? min(1, coveredLength / streetLength) : 0 }
    /// Covered share of the area.
    public var coveredAreaShare: Double { area > 0 ? min(1, coveredArea / area) : 0 }

    /// Adds another ward's figures (cameras too: each camera stands in one ward).
    public mutating func add(_ o: CoverageFigures) {
        cameras += o.cameras
        streetLength += o.streetLength
        coveredLength += o.coveredLength
        area += o.area
        coveredArea += o.coveredArea
        intersections += o.intersections
        unseenIntersections += o.unseenIntersections
        singleIntersections += o.singleIntersections
        multiIntersections += o.multiIntersections
        incidents += o.incidents
        unseenIncidents += o.unseenIncidents
        gapScore += o.gapScore
    }
}

/// An uncovered stretch of street.
public struct CoverageStretch: Sendable, Equatable {
    public var ward: String
    public var street: String?
    public var length: Double
    /// 1 + unseen incidents within the incident radius.
    public var weight: Double
    /// The stretch's middle vertex (WGS84).
    public var lat: Double
    public var lon: Double
    /// length × weight: the ranking key.
    public var score: Double { length * weight }
}

/// A suggested new camera site.
public struct CoverageSuggestion: Sendable, Equatable {
    /// 1-based order of choice.
    public var rank: Int
    /// `intersection` or `alley`.
    public var site: String
    public var ward: String
    public var lat: Double
    public var lon: Double
    /// Heading of the standard sector (nil for a 360° camera).
    public var heading: Double?
    public var fov: Double
    public var range: Double
    /// Street length newly covered by this camera, given the existing ones and the earlier
    /// suggestions (GEOS, metres).
    public var gain: Double
    /// The incident-weighted gain (Σ length × weight of the newly covered street).
    public var weightedGain: Double
    /// Covered street length of the analysed area once this and the earlier suggestions are added.
    public var coveredAfter: Double
}

/// The result of one analysis.
public struct CoverageResult: Sendable {
    /// The name of the whole-town row.
    public static let townName = "(town)"
    /// One row per analysed ward, in layer order.
    public var wards: [CoverageFigures]
    /// The sum of the ward rows (cameras: the counted cameras standing in the analysed wards).
    public var town: CoverageFigures
    /// Uncovered stretches, best first (length × weight), at most ``CoverageParameters/stretchLimit``.
    public var stretches: [CoverageStretch]
    /// Total number of uncovered stretches found.
    public var stretchCount: Int
    public var suggestions: [CoverageSuggestion]
    /// Counted cameras (active, range ≥ min_range, recording at `at`).
    public var camerasCounted: Int
    /// Tiles computed.
    public var tiles: Int
    /// GeoJSON features (comma-separated, no brackets) per ward name, when ``CoverageParameters/map``.
    public var mapFeatures: [String: String]
    /// GeoJSON features of the suggestions.
    public var suggestionFeatures: String

    public init(wards: [CoverageFigures], town: CoverageFigures, stretches: [CoverageStretch], stretchCount: Int,
                suggestions: [CoverageSuggestion], camerasCounted: Int, tiles: Int, mapFeatures: [String: String],
                suggestionFeatures: String) {
        self.wards = wards
        self.town = town
        self.stretches = stretches
        self.stretchCount = stretchCount
        self.suggestions = suggestions
        self.camerasCounted = camerasCounted
        self.tiles = tiles
        self.mapFeatures = mapFeatures
        self.suggestionFeatures = suggestionFeatures
    }
}

/// Progress of a running analysis: a phase and the overall fraction done (0…1).
public struct CoverageProgress: Sendable, Equatable {
    public var phase: String
    public var fraction: Double
    public init(phase: String, fraction: Double) {
        self.phase = phase
        self.fraction = fraction
    }
}

/// Thrown by the engine when its `isCancelled` check answers true.
public struct CoverageCancelled: Error, Sendable {
    public init() {}
}
