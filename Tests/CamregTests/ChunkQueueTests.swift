import Foundation
@testable import RegistryStore
import Testing

/// The bounded queue between an import's reader thread and its COPY: order, back-pressure,
/// the producer's error after its chunks, and cancellation.
@Suite("Import chunk queue")
struct ChunkQueueTests {
    @Test func chunksArriveInOrderThenTheEndOrTheError() throws {
        let queue = ChunkQueue(capacity: 2)
        let producer = Thread {
            for k in 0..<200 { try? queue.put([UInt8(k % 256), UInt8(k / 256)]) }
            queue.finish(nil)
        }
        producer.start()
        var got: [Int] = []
        while let chunk = try queue.take() { got.append(Int(chunk[0]) + 256 * Int(chunk[1])) }
        #expect(got == Array(0..<200))

        struct Unreadable: Error {}
        let failing = ChunkQueue(capacity: 4)
        try failing.put([1])
        try failing.put([2])
        failing.finish(Unreadable())
        #expect(try failing.take() == [1])
        #expect(try failing.take() == [2])
        #expect(throws: Unreadable.self) { _ = try failing.take() }
    }

    /// A background job's result can be read again (the import reads it after the commit, and
    /// its clean-up on every path reads it once more).
    @Test func backgroundJobResultCanBeReadTwice() throws {
        struct Failed: Error {}
        let job = BackgroundJob(name: "test-job") { 42 }
        #expect(try job.result() == 42)
        #expect(try job.result() == 42)
        let failing = BackgroundJob(name: "test-job") { () throws -> Int in throw Failed() }
        #expect(throws: Failed.self) { try failing.result() }
        #expect(throws: Failed.self) { try failing.result() }
    }

    /// A producer that must not wait in `put` (an event loop) asks `hasRoom`, and waits with
    /// `waitForRoom` elsewhere: it returns once the consumer has taken a chunk, or at the end.
    @Test func roomIsReportedAndAwaited() throws {
        let queue = ChunkQueue(capacity: 2)
        #expect(queue.hasRoom)
        try queue.put([1])
        try queue.put([2])
        #expect(!queue.hasRoom)
        let waiter = BackgroundJob(name: "test-waiter") { () -> Bool in
            queue.waitForRoom()
            return queue.hasRoom
        }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try queue.take() == [1])
        #expect(try waiter.result())
        try queue.put([3])
        #expect(!queue.hasRoom)
        queue.cancel()
        #expect(queue.hasRoom, "a cancelled queue refuses at once instead of waiting")
        queue.waitForRoom()
    }

    @Test func cancellingStopsAProducerThatWaitsOrReads() throws {
        let queue = ChunkQueue(capacity: 1)
        let producer = BackgroundJob(name: "test-producer") { () -> String in
            defer { queue.finish(nil) }
            do {
                try queue.put([1])
                try queue.put([2])  // waits: the queue is full
                return "not cancelled"
            } catch is ChunkQueue.Cancelled {
                return "cancelled"
            }
        }
        Thread.sleep(forTimeInterval: 0.2)
        queue.cancel()
        #expect(try producer.result() == "cancelled")
        #expect(throws: ChunkQueue.Cancelled.self) { try queue.throwIfCancelled() }
    }

}
