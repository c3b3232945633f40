/// What a counted pipeline did: how many replies came back and which commands failed.
package struct PipelineOutcome: Sendable {
    /// How many of the earliest error replies are kept with their command index.
    package static let keptErrorLimit = 10

    /// Replies received (one per command).
    package var commandCount: Int
    package var errorCount: Int
    /// The first `keptErrorLimit` error replies; `index` is the command's position in the
    /// batch (or in the whole stream, for `executeStreaming`).
    package var firstErrors: [(index: Int, message: String)]
    /// Every cluster redirection or temporary cluster error (MOVED, ASK, TRYAGAIN,
    /// CLUSTERDOWN, LOADING) with its command index, all of them and not only the first:
    /// the cluster client re-sends exactly those commands. Always empty on a standalone server.
    var clusterRetries: [(index: Int, message: String)] = []

    package init(commandCount: Int = 0, errorCount: Int = 0, firstErrors: [(index: Int, message: String)] = []) {
        self.commandCount = commandCount
        self.errorCount = errorCount
        self.firstErrors = firstErrors
    }

    mutating func recordError(at index: Int, _ message: String) {
        errorCount += 1
        if ClusterRedirect(message) != nil {
            clusterRetries.append((index, message))
        }
        if firstErrors.count < Self.keptErrorLimit {
            firstErrors.append((index, message))
        }
    }

    /// Adds a later part of the same stream whose indices start at `offset`.
    mutating func merge(_ other: PipelineOutcome, offset: Int) {
        commandCount += other.commandCount
        errorCount += other.errorCount
        for error in other.firstErrors where firstErrors.count < Self.keptErrorLimit {
            firstErrors.append((error.index + offset, error.message))
        }
    }
}
