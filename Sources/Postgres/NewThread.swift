import Foundation

/// Runs blocking `body` on a new thread named `name` (with an 8 MiB stack, like the main
/// thread's) and returns its result: for work that may block for long and must not hold one of
/// the few threads of a shared pool (a database call waiting on its client, a coverage
/// analysis, a probe of a server that may hang).
public func runOnNewThread<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
        let thread = Thread { c.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.name = name
        thread.start()
    }
}
