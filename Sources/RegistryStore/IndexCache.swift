import Foundation
import Geo
import Postgres
import Registry

#if canImport(Glibc)
import Glibc
#endif

/// Which database a cache was made from: a cache is used only on the same cluster
/// (`system_identifier`), the same database (oid and name: a database dropped and created again
/// under the same name has another oid) and the same schema (highest applied migration).
public struct DatabaseIdentity: Sendable, Equatable, CustomStringConvertible {
    /// `pg_control_system().system_identifier`: unique per cluster (`initdb`), shared by its
    /// streaming replicas.
    public var systemIdentifier: UInt64
    /// `pg_database.oid` of the current database.
    public var databaseOID: UInt32
    /// `current_database()`.
    public var databaseName: String
    /// The highest version in `schema_migrations`.
    public var schemaVersion: Int32

    public init(systemIdentifier: UInt64, databaseOID: UInt32, databaseName: String, schemaVersion: Int32) {
        self.systemIdentifier = systemIdentifier
        self.databaseOID = databaseOID
        self.databaseName = databaseName
        self.schemaVersion = schemaVersion
    }

    /// Reads the identity of the database `c` is connected to.
    public static func read(on c: PostgresConnection) throws -> DatabaseIdentity {
        let r = try c.query("""
            SELECT (SELECT system_identifier FROM pg_control_system()), d.oid::bigint, d.datname,
                   (SELECT coalesce(max(version), 0) FROM schema_migrations)
            FROM pg_database d WHERE d.datname = current_database()
            """)
        guard let row = r.rows.first, row.count == 4, let sys = row[0].flatMap({ Int64($0) }),
              let oid = row[1].flatMap({ UInt32($0) }), let name = row[2], let schema = row[3].flatMap({ Int32($0) }) else {
            throw PostgresError(code: .unexpectedResult, message: "cannot read the database identity")
        }
        return DatabaseIdentity(systemIdentifier: UInt64(bitPattern: sys), databaseOID: oid, databaseName: name, schemaVersion: schema)
    }

    public var description: String {
        "system \(systemIdentifier), database \(databaseName) (oid \(databaseOID)), schema \(schemaVersion)"
    }
}

/// Why a cache file was not used (the daemon then does the full load and logs this).
public struct IndexCacheError: Error, CustomStringConvertible, Sendable {
    /// A short explanation, for the log.
    public var reason: String
    /// True when there is simply no cache file.
    public var missing = false
    public init(_ reason: String, missing: Bool = false) {
        self.reason = reason
        self.missing = missing
    }
    public var description: String { reason }
}

/// The fixed part of a cache file, read before the cameras.
public struct IndexCacheHeader: Sendable {
    /// The database the cameras were read from.
    public var identity: DatabaseIdentity
    /// The change number the cameras reflect (``CameraSnapshotLoad/sequence``).
    public var sequence: Int64
    /// The highest `camera_changes.seq` at that point (``CameraSnapshotLoad/anchor``).
    public var anchor: Int64
    /// Number of cameras.
    public var count: Int
    /// Bytes of camera records after the header.
    var payloadLength: Int
    /// Hash of those bytes.
    var payloadHash: UInt64
}

/// The database's side of a start from the cache, read in one repeatable-read snapshot: who it
/// is, where its change log stands, the cameras changed after the cache, and the fingerprint of
/// the whole table to check the result against.
public struct IndexCacheCatchUp: Sendable {
    public var identity: DatabaseIdentity
    /// The current change number (the feed continues after it).
    public var sequence: Int64
    /// The current highest `camera_changes.seq`.
    public var anchor: Int64
    /// Whether the cache's anchor row is still in `camera_changes`.
    public var anchorPresent: Bool
    /// Cameras with a change after the cache's sequence, as they are now (with their `xmin`).
    public var changed: CameraSnapshotLoad
    /// Number of change rows after the cache's sequence.
    public var changeRows: Int
    /// `count`, `sum(version)`, `sum(xmin)` of the table.
    public var fingerprint: CameraTableFingerprint
}

/// A compact binary copy of every camera in `<data-dir>/index-cache.bin`, so that a restart can
/// skip reading a million rows from PostgreSQL (as Redis restarts from its RDB file).
///
/// It is only a start-up accelerator: a cache is used only if it has this format version, the
/// same database identity, intact hashes, and — after the cameras changed since it was written
/// (`camera_changes` after its sequence) are read again from PostgreSQL — the same `count(*)`,
/// `sum(version)` and `sum(xmin)` as the table. Anything else means a full load. The file is
/// written to a temporary name, fsynced and renamed, so a reader never sees half a file; it can
/// be deleted at any time.
///
/// Layout (little-endian): magic `CAMREGIX`, format version (u32), header (system identifier
/// u64, database oid u32, schema version i32, sequence i64, anchor i64, count u64, payload
/// length u64, payload hash u64, name length u16 + name bytes), header hash (u64), then one
/// record per camera: flags (u8: which optional fields follow), site kind, owner kind, status,
/// schedule kind (u8 each), schedule start and end (u16), xmin (u32), retention (i32), version
/// (i64), lat, lon, fov, range, created and updated (f64; dates as seconds since 2001, exact),
/// the optional numbers, then the strings (u32 length + UTF-8). The records are in the camera
/// table's space order (Hilbert key, then id); after them, the id index: for each camera in id
/// order, its position among the records (u32).
public enum IndexCache {
    /// The file name inside the data folder.
    public static let fileName = "index-cache.bin"
    /// Bumped whenever the layout (or `Camera`) changes: other versions are ignored.
    /// 2: the cameras are in the table's space order (version 1 had the database's order), and
    /// their id index follows them.
    public static let formatVersion: UInt32 = 2
    static let magic: [UInt8] = Array("CAMREGIX".utf8)
    static let block = 1 << 20

    // MARK: Writing

    /// Writes `load` as the cache at `path`: to `path.tmp`, fsync, rename, fsync the folder.
    /// The cameras go in the table's space order (Hilbert key, then id: see `CameraTable`),
    /// which a start takes as its slot order, reading the file front to back.
    /// (`inSpaceOrder: false` writes the load's own order instead: tests read such a file.)
    public static func write(_ load: CameraSnapshotLoad, identity: DatabaseIdentity, to path: String, inSpaceOrder: Bool = true) throws {
        precondition(load.cameras.count == load.xmins.count)
        let tmp = path + ".tmp"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IndexCacheError("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(fd) } }
        do {
            var header = IndexCacheHeader(identity: identity, sequence: load.sequence, anchor: load.anchor,
                                          count: load.cameras.count, payloadLength: 0, payloadHash: 0)
            let headerBytes = encodeHeader(header)
            try writeAll(fd, headerBytes)
            var out = BlockWriter(fd: fd)
            let cameras = load.cameras
            let byID = cameras.indices.sorted { cameras[$0].id.utf8.lexicographicallyPrecedes(cameras[$1].id.utf8) }
            var order = Array(cameras.indices)
            if inSpaceOrder {
                let slots = try CameraTable.spaceOrder(count: byID.count) { rank in
                    CameraTable.hilbertKey(lat: cameras[byID[rank]].lat, lon: cameras[byID[rank]].lon)
                }
                order = slots.buffer.map { byID[Int($0)] }
            }
            for i in order {
                try encode(cameras[i], xmin: load.xmins[i], into: &out)
            }
            // Then the id index: the file's cameras by id, as positions in the file (a start
            // checks it in one pass instead of sorting a million ids).
            var place = [UInt32](repeating: 0, count: cameras.count)
            for (k, i) in order.enumerated() { place[i] = UInt32(k) }
            for i in byID { out.u32(place[i]) }
            try out.finish()
            header.payloadLength = out.written
            header.payloadHash = out.hash
            let final = encodeHeader(header)
            guard final.count == headerBytes.count else { throw IndexCacheError("header size changed") }
            try final.withUnsafeBytes { b in
                guard pwrite(fd, b.baseAddress, b.count, 0) == b.count else {
                    throw IndexCacheError("cannot write \(tmp): \(String(cString: strerror(errno)))")
                }
            }
            guard fsync(fd) == 0 else { throw IndexCacheError("fsync \(tmp): \(String(cString: strerror(errno)))") }
            closed = true
            guard close(fd) == 0 else { throw IndexCacheError("close \(tmp): \(String(cString: strerror(errno)))") }
            guard rename(tmp, path) == 0 else { throw IndexCacheError("rename \(tmp): \(String(cString: strerror(errno)))") }
        } catch {
            unlink(tmp)
            throw error
        }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)  // the rename's durability; the cache is only an accelerator
            close(dfd)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw IndexCacheError("cannot write the cache: \(String(cString: strerror(errno)))") }
                off += n
            }
        }
    }

    /// Collects bytes and writes them in whole blocks of `IndexCache.block`, hashing each block.
    struct BlockWriter {
        let fd: Int32
        var buffer: [UInt8] = []
        var hash = hashSeed
        var written = 0

        init(fd: Int32) {
            self.fd = fd
            buffer.reserveCapacity(IndexCache.block * 2)
        }

        mutating func flushBlocks(final: Bool) throws {
            var start = 0
            while buffer.count - start >= IndexCache.block || (final && buffer.count > start) {
                let end = min(start + IndexCache.block, buffer.count)
                let chunk = Array(buffer[start..<end])
                hash = combine(hash, hashBlock(chunk))
                try IndexCache.writeAll(fd, chunk)
                written += chunk.count
                start = end
            }
            buffer.removeFirst(start)
        }

        mutating func finish() throws { try flushBlocks(final: true) }

        @inline(__always) mutating func u8(_ v: UInt8) { buffer.append(v) }
        @inline(__always) mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
        @inline(__always) mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
        @inline(__always) mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
        @inline(__always) mutating func f64(_ v: Double) { u64(v.bitPattern) }
        @inline(__always) mutating func string(_ s: String) {
            var s = s
            s.withUTF8 { b in
                u32(UInt32(b.count))
                buffer.append(contentsOf: b)
            }
        }
    }

    static func encodeHeader(_ h: IndexCacheHeader) -> [UInt8] {
        var b: [UInt8] = magic
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { b.append(contentsOf: $0) } }
        put(formatVersion)
        put(h.identity.systemIdentifier)
        put(h.identity.databaseOID)
        put(h.identity.schemaVersion)
        put(h.sequence)
        put(h.anchor)
        put(UInt64(h.count))
        put(UInt64(h.payloadLength))
        put(h.payloadHash)
        let name = Array(h.identity.databaseName.utf8.prefix(1024))
        put(UInt16(name.count))
        b += name
        put(hashBlock(b))
        return b
    }

    static func encode(_ c: Camera, xmin: UInt32, into w: inout BlockWriter) throws {
        var flags: UInt8 = 0
        if c.heading != nil { flags |= 1 }
        if c.mountHeight != nil { flags |= 2 }
        if c.ownerName != nil { flags |= 4 }
        if c.ownerPhone != nil { flags |= 8 }
        if c.ownerID != nil { flags |= 16 }
        if c.verifiedBy != nil { flags |= 32 }
        if c.verifiedAt != nil { flags |= 64 }
        if c.statusReason != nil { flags |= 128 }
        w.u8(flags)
        w.u8(UInt8(SiteKind.allCases.firstIndex(of: c.siteKind)!))
        w.u8(UInt8(OwnerKind.allCases.firstIndex(of: c.ownerKind)!))
        w.u8(UInt8(CameraStatus.allCases.firstIndex(of: c.status)!))
        switch c.schedule {
        case .always: w.u8(0); w.u16(0); w.u16(0)
        case .daily(let s, let e): w.u8(1); w.u16(UInt16(clamping: s)); w.u16(UInt16(clamping: e))
        }
        w.u32(xmin)
        w.u32(UInt32(bitPattern: Int32(clamping: c.retentionDays)))
        w.u64(UInt64(bitPattern: Int64(c.version)))
        w.f64(c.lat); w.f64(c.lon); w.f64(c.fov); w.f64(c.range)
        w.f64(c.createdAt.timeIntervalSinceReferenceDate); w.f64(c.updatedAt.timeIntervalSinceReferenceDate)
        if let v = c.heading { w.f64(v) }
        if let v = c.mountHeight { w.f64(v) }
        if let v = c.ownerID { w.u64(UInt64(bitPattern: v)) }
        if let v = c.verifiedAt { w.f64(v.timeIntervalSinceReferenceDate) }
        w.string(c.id); w.string(c.address); w.string(c.ward)
        if let v = c.ownerName { w.string(v) }
        if let v = c.ownerPhone { w.string(v) }
        if let v = c.verifiedBy { w.string(v) }
        if let v = c.statusReason { w.string(v) }
        if w.buffer.count >= IndexCache.block { try w.flushBlocks(final: false) }
    }

    // MARK: Reading

    /// The whole file, read with one `read` (looped only if the kernel returns less), and its header.
    public final class File: @unchecked Sendable {
        /// The parsed header.
        public let header: IndexCacheHeader
        let bytes: UnsafeMutableRawBufferPointer
        let payloadStart: Int

        init(header: IndexCacheHeader, bytes: UnsafeMutableRawBufferPointer, payloadStart: Int) {
            self.header = header
            self.bytes = bytes
            self.payloadStart = payloadStart
        }

        deinit { bytes.deallocate() }
    }

    /// Reads the cache file and checks its magic, version and header hash (the cameras are
    /// checked and decoded by ``decode(_:)``). Throws ``IndexCacheError`` (with `missing` set
    /// when there is no file).
    public static func read(path: String) throws -> File {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw IndexCacheError("cannot open \(path): \(String(cString: strerror(e)))", missing: e == ENOENT)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw IndexCacheError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        let size = Int(st.st_size)
        guard size >= 80, size < (1 << 40) else { throw IndexCacheError("the cache file is too short (\(size) bytes)") }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        var got = 0
        while got < size {
            let n = Glibc.read(fd, bytes.baseAddress! + got, size - got)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let message = n == 0 ? "the file shrank while being read" : String(cString: strerror(errno))
                bytes.deallocate()
                throw IndexCacheError("cannot read \(path): \(message)")
            }
            got += n
        }
        do {
            let (header, payloadStart) = try parseHeader(UnsafeRawBufferPointer(bytes))
            return File(header: header, bytes: bytes, payloadStart: payloadStart)
        } catch {
            bytes.deallocate()
            throw error
        }
    }

    static func parseHeader(_ b: UnsafeRawBufferPointer) throws -> (IndexCacheHeader, Int) {
        var r = Reader(bytes: b, at: 0)
        guard try r.bytes(8).elementsEqual(magic) else { throw IndexCacheError("not a camregd index cache (bad magic)") }
        let version = try r.u32()
        guard version == formatVersion else { throw IndexCacheError("cache format version \(version), this camregd reads \(formatVersion)") }
        let sys = try r.u64(), oid = try r.u32(), schema = Int32(bitPattern: try r.u32())
        let sequence = Int64(bitPattern: try r.u64()), anchor = Int64(bitPattern: try r.u64())
        let count = try r.u64(), payloadLength = try r.u64(), payloadHash = try r.u64()
        let nameLength = Int(try r.u16())
        let name = String(decoding: try r.bytes(nameLength), as: UTF8.self)
        let headerEnd = r.at
        let stored = try r.u64()
        guard stored == hashBlock(UnsafeRawBufferPointer(rebasing: b[0..<headerEnd])) else {
            throw IndexCacheError("the cache header is corrupted (hash mismatch)")
        }
        guard payloadLength == UInt64(b.count - r.at) else {
            throw IndexCacheError("the cache file has \(b.count - r.at) bytes of cameras, its header says \(payloadLength) (truncated?)")
        }
        guard count <= payloadLength / 60 + 1 else { throw IndexCacheError("the cache header's camera count is impossible") }
        let header = IndexCacheHeader(identity: DatabaseIdentity(systemIdentifier: sys, databaseOID: oid, databaseName: name, schemaVersion: schema),
                                      sequence: sequence, anchor: anchor, count: Int(count),
                                      payloadLength: Int(payloadLength), payloadHash: payloadHash)
        return (header, r.at)
    }

    /// Checks the hash of the camera records and decodes them. Never reads out of bounds; any
    /// inconsistency throws ``IndexCacheError``.
    public static func decode(_ file: File) throws -> CameraSnapshotLoad {
        let payload = try checkedPayload(file)
        let h = file.header
        var load = CameraSnapshotLoad(cameras: [], xmins: [], sequence: h.sequence, anchor: h.anchor)
        load.cameras.reserveCapacity(h.count)
        load.xmins.reserveCapacity(h.count)
        var r = Reader(bytes: payload, at: 0)
        var interner = StringInterner()
        for _ in 0..<h.count {
            let (raw, xmin) = try readCamera(&r)
            var camera = raw.camera
            camera.ward = interner.intern(camera.ward)
            camera.verifiedBy = camera.verifiedBy.map { interner.intern($0) }
            camera.statusReason = camera.statusReason.map { interner.intern($0) }
            load.cameras.append(camera)
            load.xmins.append(xmin)
        }
        guard payload.count - r.at == 4 * h.count else {
            throw IndexCacheError("\(payload.count - r.at) bytes after the cached cameras, not their id index's \(4 * h.count)")
        }
        return load
    }

    /// The cached cameras packed straight into a ``CameraTable`` (no `Camera` values: the
    /// text is copied from the file's bytes), with the fingerprint they add up to. For a start
    /// with no changes after the cache (see ``check(_:header:fingerprint:)``).
    public static func decodeTable(_ file: File) throws -> (table: CameraTable, tree: STRtree, fingerprint: CameraTableFingerprint) {
        let payload = try checkedPayload(file)
        let n = file.header.count
        guard payload.count < Int(UInt32.max) else { throw IndexCacheError("the cache is too large to pack from (\(payload.count) bytes)") }
        // Pass 1: where each camera starts, the text it needs, and the sums. The offsets live in
        // memory of their own (`mmap`), not in malloc's arenas, where a freed block of this
        // size could stay resident for the daemon's life.
        let starts: ScratchBuffer<UInt32>
        do { starts = try ScratchBuffer<UInt32>(count: n) } catch let e as RegistryError { throw IndexCacheError(e.message) }
        var textBytes = 0
        var versions: Int64 = 0, xmins: Int64 = 0
        var r = Reader(bytes: payload, at: 0)
        for i in 0..<n {
            starts.buffer[i] = UInt32(r.at)
            let (raw, xmin) = try readCamera(&r)
            textBytes += CameraTable.encodedTextCount(id: raw.id.count, address: raw.address.count, ownerName: raw.ownerName?.count,
                                                      ownerPhone: raw.ownerPhone?.count, statusReason: raw.statusReason?.count)
            versions &+= raw.version
            xmins &+= Int64(xmin)
        }
        guard payload.count - r.at == 4 * n else {
            throw IndexCacheError("\(payload.count - r.at) bytes after the cached cameras, not their id index's \(4 * n)")
        }
        let idIndexAt = r.at
        // Pass 2: packed in the file's order, the ids sorted beside it. A camera's id lies after
        // its fixed-width part (73 bytes), the optional numbers its flags announce (8 bytes each)
        // and the id's length.
        func id(_ i: Int) -> UnsafeRawBufferPointer {
            let start = Int(starts.buffer[i])
            let flags = payload[start]
            let at = start + 73 + 8 * (flags & (1 | 2 | 16 | 64)).nonzeroBitCount
            let count = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            return UnsafeRawBufferPointer(rebasing: payload[at + 4..<at + 4 + count])
        }
        let table: CameraTable
        let tree: STRtree
        do {
            func position(_ i: Int) -> (lat: Double, lon: Double) {
                let at = Int(starts.buffer[i])
                return (Double(bitPattern: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: at + latitudeOffset, as: UInt64.self))),
                        Double(bitPattern: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: at + longitudeOffset, as: UInt64.self))))
            }
            // The file holds the cameras in the table's space order (see `write`): slot `k` is
            // the file's camera `k`. (Were a file in another order, the table would be just as
            // correct, only less compact.) Three jobs at once: the file's id index is checked on
            // one thread while the table is packed on another and this one builds the
            // STRtree from the file's positions, in slot order. (The tree's many small
            // allocations stay in this thread's malloc arena, as when it was built after the table.)
            let sorting = BackgroundJob { try checkedIDOrder(count: n, at: idIndexAt, of: payload, id: id) }
            let packing = BackgroundJob {
                try CameraTable(count: n, textBytes: textBytes, camera: { i in
                    var r = Reader(bytes: payload, at: Int(starts.buffer[i]))
                    return try readCamera(&r).raw
                }, idOrder: { UnsafeBufferPointer(try sorting.result().buffer) })
            }
            let built = Swift.Result { try IndexSnapshot.buildTree(count: n, position: position) }
            // Always waited for, so that the jobs are done with `starts` and the file (and the
            // sorted ids outlive the packing that reads them).
            let packed = Swift.Result { try withExtendedLifetime(starts) { try packing.result() } }
            _ = try? sorting.result()
            table = try packed.get()
            tree = try built.get()
        } catch let e as RegistryError {
            throw IndexCacheError("the cached cameras cannot be packed: \(e.message)")
        }
        return (table, tree, CameraTableFingerprint(count: Int64(n), versionSum: versions, xminSum: xmins))
    }

    /// The file's id index (after the cameras: their positions in the file, by id), checked:
    /// every position once, and each id greater than the one before (so also no id twice).
    /// Checking is one pass; sorting a million ids again took twice as long.
    static func checkedIDOrder(count n: Int, at start: Int, of payload: UnsafeRawBufferPointer,
                               id: (Int) -> UnsafeRawBufferPointer) throws -> ScratchBuffer<Int32> {
        let order: ScratchBuffer<Int32>, seen: ScratchBuffer<UInt8>
        do {
            order = try ScratchBuffer<Int32>(count: n)
            seen = try ScratchBuffer<UInt8>(count: n)
        } catch let e as RegistryError { throw IndexCacheError(e.message) }
        var previous: UnsafeRawBufferPointer?
        for rank in 0..<n {
            let i = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: start + 4 * rank, as: UInt32.self)))
            guard i < n, seen.buffer[i] == 0 else { throw IndexCacheError("the id index names camera \(i) twice or out of range") }
            seen.buffer[i] = 1
            let current = id(i)
            if let p = previous {
                let common = min(p.count, current.count)
                let c = common == 0 ? 0 : memcmp(p.baseAddress!, current.baseAddress!, common)
                guard c < 0 || c == 0 && p.count < current.count else {
                    throw IndexCacheError("the id index is out of order at \(String(decoding: current, as: UTF8.self))")
                }
            }
            previous = current
            order.buffer[rank] = Int32(i)
        }
        return order
    }

    /// Where a camera's latitude and longitude lie in its cached record (after flags, three
    /// enums, the schedule, xmin, retention and version: see ``encode(_:xmin:into:)``).
    static let latitudeOffset = 25, longitudeOffset = 33

    /// The payload after its hash has been checked.
    static func checkedPayload(_ file: File) throws -> UnsafeRawBufferPointer {
        let payload = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(file.bytes)[file.payloadStart...])
        var hash = hashSeed
        var start = 0
        while start < payload.count {
            let end = min(start + block, payload.count)
            hash = combine(hash, hashBlock(UnsafeRawBufferPointer(rebasing: payload[start..<end])))
            start = end
        }
        guard hash == file.header.payloadHash else { throw IndexCacheError("the cached cameras are corrupted (hash mismatch)") }
        return payload
    }

    /// One camera at the reader's position (the layout ``encode(_:xmin:into:)`` writes), its
    /// text pointing into the file's bytes.
    static func readCamera(_ r: inout Reader) throws -> (raw: RawCamera, xmin: UInt32) {
        var c = RawCamera()
        let flags = try r.u8()
        let site = Int(try r.u8()), owner = Int(try r.u8()), status = Int(try r.u8())
        let scheduleKind = try r.u8(), s = Int(try r.u16()), e = Int(try r.u16())
        let sites = SiteKind.allCases, owners = OwnerKind.allCases, statuses = CameraStatus.allCases
        guard site < sites.count, owner < owners.count, status < statuses.count, scheduleKind <= 1 else {
            throw IndexCacheError("bad enum value in the cache")
        }
        c.siteKind = sites[site]; c.ownerKind = owners[owner]; c.status = statuses[status]
        c.schedule = scheduleKind == 0 ? .always : .daily(start: s, end: e)
        let xmin = try r.u32()
        c.retentionDays = Int(Int32(bitPattern: try r.u32()))
        c.version = Int64(bitPattern: try r.u64())
        c.lat = try r.f64(); c.lon = try r.f64(); c.fov = try r.f64(); c.range = try r.f64()
        c.createdAt = try r.f64(); c.updatedAt = try r.f64()
        if flags & 1 != 0 { c.heading = try r.f64() }
        if flags & 2 != 0 { c.mountHeight = try r.f64() }
        if flags & 16 != 0 { c.ownerID = Int64(bitPattern: try r.u64()) }
        if flags & 64 != 0 { c.verifiedAt = try r.f64() }
        c.id = try r.text(); c.address = try r.text(); c.ward = try r.text()
        if flags & 4 != 0 { c.ownerName = try r.text() }
        if flags & 8 != 0 { c.ownerPhone = try r.text() }
        if flags & 32 != 0 { c.verifiedBy = try r.text() }
        if flags & 128 != 0 { c.statusReason = try r.text() }
        return (c, xmin)
    }

    /// A bounds-checked little-endian cursor.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at: Int

        @inline(__always) mutating func need(_ n: Int) throws {
            guard n >= 0, bytes.count - at >= n else { throw IndexCacheError("the cache file is truncated") }
        }
        @inline(__always) mutating func u8() throws -> UInt8 { try need(1); defer { at += 1 }; return bytes[at] }
        @inline(__always) mutating func u16() throws -> UInt16 {
            try need(2); defer { at += 2 }; return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))
        }
        @inline(__always) mutating func u32() throws -> UInt32 {
            try need(4); defer { at += 4 }; return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
        }
        @inline(__always) mutating func u64() throws -> UInt64 {
            try need(8); defer { at += 8 }; return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
        }
        @inline(__always) mutating func f64() throws -> Double { Double(bitPattern: try u64()) }
        mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
            try need(n); defer { at += n }; return UnsafeRawBufferPointer(rebasing: bytes[at..<at + n])
        }
        /// A length-prefixed string's bytes, in place.
        mutating func text() throws -> UnsafeRawBufferPointer {
            let n = Int(try u32())
            return try bytes(n)
        }
    }

    // MARK: Hashing (corruption detection, not security)

    static let hashSeed: UInt64 = 0xCBF2_9CE4_8422_2325

    @inline(__always) static func combine(_ h: UInt64, _ v: UInt64) -> UInt64 {
        var x = (h ^ v) &* 0x9E37_79B9_7F4A_7C15
        x ^= x >> 31
        return x
    }

    /// A 64-bit hash of a block, 8 bytes at a time in four independent lanes.
    static func hashBlock(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var l0: UInt64 = 0x243F_6A88_85A3_08D3, l1: UInt64 = 0x1319_8A2E_0370_7344
        var l2: UInt64 = 0xA409_3822_299F_31D0, l3: UInt64 = 0x082E_FA98_EC4E_6C89
        let words = b.count / 8
        var i = 0
        @inline(__always) func mix(_ l: inout UInt64, _ w: UInt64) {
            l = (l ^ w) &* 0xFF51_AFD7_ED55_8CCD
            l ^= l >> 33
        }
        while i + 4 <= words {
            mix(&l0, b.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
            mix(&l1, b.loadUnaligned(fromByteOffset: i * 8 + 8, as: UInt64.self))
            mix(&l2, b.loadUnaligned(fromByteOffset: i * 8 + 16, as: UInt64.self))
            mix(&l3, b.loadUnaligned(fromByteOffset: i * 8 + 24, as: UInt64.self))
            i += 4
        }
        while i < words { mix(&l0, b.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)); i += 1 }
        var tail: UInt64 = 0
        for j in (words * 8)..<b.count { tail = tail << 8 | UInt64(b[j]) }
        mix(&l1, tail)
        var h = combine(hashSeed, UInt64(b.count))
        h = combine(h, l0); h = combine(h, l1); h = combine(h, l2); h = combine(h, l3)
        return h
    }

    static func hashBlock(_ b: [UInt8]) -> UInt64 { b.withUnsafeBytes { hashBlock($0) } }

    // MARK: Catching up with the database

    /// Reads, in one repeatable-read snapshot, what a start from a cache with `header` needs
    /// from the database (see ``IndexCacheCatchUp``).
    public static func catchUp(after header: IndexCacheHeader, on c: PostgresConnection) throws -> IndexCacheCatchUp {
        try c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let identity = try DatabaseIdentity.read(on: c)
            let sequence = try ChangeFeed.currentSequence(on: c)
            let anchor = Int64(try c.query("SELECT coalesce(max(seq), 0) FROM camera_changes").scalar() ?? "0") ?? 0
            var present = false
            if header.anchor > 0 {
                present = try c.query("SELECT EXISTS (SELECT 1 FROM camera_changes WHERE seq = $1)", [String(header.anchor)]).scalar() == "t"
            }
            let after = header.sequence
            // Camera changes, not rows: an import block names up to 4,096 cameras (migration 0008).
            let rows = Int(try c.query("SELECT coalesce(sum(coalesce(cardinality(camera_ids), 1)), 0) FROM camera_changes WHERE seq > $1",
                                       [String(after)]).scalar() ?? "0") ?? 0
            var changed = CameraSnapshotLoad(cameras: [], xmins: [], sequence: sequence, anchor: anchor)
            if rows > 0 && identity == header.identity {
                try CameraStream.stream(where: "id IN (\(ChangeFeed.changedIDs(after: String(after))))",
                                        expected: rows, into: &changed, on: c)
            }
            let fingerprint = try CameraTableFingerprint.read(on: c)
            try c.query("COMMIT")
            return IndexCacheCatchUp(identity: identity, sequence: sequence, anchor: anchor, anchorPresent: present,
                                     changed: changed, changeRows: rows, fingerprint: fingerprint)
        } catch {
            if c.isHealthy { _ = try? c.query("ROLLBACK") }
            throw error
        }
    }

    /// The cached cameras brought up to the database's snapshot, or ``IndexCacheError`` saying
    /// why the cache cannot be trusted (the caller then does the full load).
    public static func merge(_ cached: CameraSnapshotLoad, header: IndexCacheHeader, with db: IndexCacheCatchUp) throws -> CameraSnapshotLoad {
        try checkLineage(header: header, with: db)
        var result = cached
        if !db.changed.cameras.isEmpty {
            var fresh: [String: Int] = [:]
            for (i, c) in db.changed.cameras.enumerated() { fresh[c.id] = i }
            for i in result.cameras.indices {
                if let j = fresh.removeValue(forKey: result.cameras[i].id) {
                    result.cameras[i] = db.changed.cameras[j]
                    result.xmins[i] = db.changed.xmins[j]
                    if fresh.isEmpty { break }
                }
            }
            for j in fresh.values.sorted() {
                result.cameras.append(db.changed.cameras[j])
                result.xmins.append(db.changed.xmins[j])
            }
        }
        result.sequence = db.sequence
        result.anchor = db.anchor
        try checkFingerprint(result.fingerprint, with: db)
        return result
    }

    /// Throws ``IndexCacheError`` unless the cameras, brought up to the database's snapshot, add
    /// up to the table's count, `sum(version)` and `sum(xmin)`.
    public static func checkFingerprint(_ mine: CameraTableFingerprint, with db: IndexCacheCatchUp) throws {
        guard mine == db.fingerprint else {
            throw IndexCacheError("the cache and the changes after it do not match the cameras table (cache: \(mine); table: \(db.fingerprint))")
        }
    }

    /// Throws ``IndexCacheError`` unless a cache with `header` belongs to this database, is not
    /// ahead of it, and the change log still holds every change after it.
    public static func checkLineage(header: IndexCacheHeader, with db: IndexCacheCatchUp) throws {
        guard db.identity == header.identity else {
            throw IndexCacheError("the cache was written for another database (\(header.identity); this is \(db.identity))")
        }
        guard db.sequence >= header.sequence else {
            throw IndexCacheError("the database's change number \(db.sequence) is behind the cache's \(header.sequence) (restored from a backup?)")
        }
        guard db.anchorPresent else {
            throw IndexCacheError(header.anchor == 0
                ? "the cache has no change-log anchor (the log was empty when it was written)"
                : "camera_changes no longer holds change \(header.anchor): the log was pruned past the cache")
        }
    }
}

