import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Timestamps

/// Where the documentation site is read from: a local directory or an http(s) base URL.
enum DocumentSource: Sendable {
    case directory(URL)
    case http(base: URL)

    init(location: String) throws(SearchIndexError) {
        let lowered = location.lowercased()
        if lowered.hasPrefix("http://") || lowered.hasPrefix("https://") {
            // The base may or may not end in `/`; relative paths must land below it.
            let text = location.hasSuffix("/") ? location : location + "/"
            guard let base = URL(string: text), base.host != nil else {
                throw .invalidLocation(location)
            }
            self = .http(base: base)
        } else if lowered.hasPrefix("file://") {
            guard let url = URL(string: location), url.isFileURL else { throw .invalidLocation(location) }
            self = .directory(url)
        } else {
            self = .directory(URL(fileURLWithPath: location, isDirectory: true))
        }
    }

    /// The full location of `path` (relative to the site), for fetching and for reports.
    func locate(_ path: String) -> String {
        let relative = path.drop(while: { $0 == "/" })
        switch self {
        case .directory(let root):
            return root.appendingPathComponent(String(relative)).path
        case .http(let base):
            let encoded = relative.addingPercentEncoding(withAllowedCharacters: Self.pathCharacters) ?? String(relative)
            return base.absoluteString + encoded
        }
    }

    /// RFC 3986 path characters; `%` stays so that an already-encoded path is left alone.
    private static let pathCharacters: CharacterSet = {
        var set = CharacterSet.urlPathAllowed
        set.insert("%")
        return set
    }()
}

/// The outcome of reading one file of the site.
enum FetchOutcome: Sendable, Equatable {
    /// The body, and the charset the server declared for it, if any.
    case found([UInt8], charset: String?)
    case notFound(reason: String)
    case failed(reason: String)
}

/// Reads files of the site with a per-request timeout and retries for transient failures.
struct DocumentFetcher: Sendable {
    /// The most bytes a page or the manifest may hold. Documentation pages are tens of KiB,
    /// so this is far above any real one, yet bounds the memory of a runaway or hostile
    /// response (the fetcher holds up to `concurrency` bodies at once). Beyond it a page is
    /// a failed document and the manifest is unreadable.
    static let maxDocumentBytes = 32 * 1024 * 1024

    let source: DocumentSource
    let timeout: Duration
    let retries: Int
    let maxBytes: Int
    let session: URLSession?
    private let collector: BoundedBodyCollector?

    init(source: DocumentSource, timeout: Duration, retries: Int, concurrency: Int, maxBytes: Int = Self.maxDocumentBytes) {
        self.source = source
        self.timeout = timeout
        self.retries = max(0, retries)
        self.maxBytes = maxBytes
        switch source {
        case .directory:
            session = nil
            collector = nil
        case .http:
            let configuration = URLSessionConfiguration.ephemeral
            let seconds = timeout.seconds
            configuration.timeoutIntervalForRequest = seconds
            configuration.timeoutIntervalForResource = seconds
            configuration.httpMaximumConnectionsPerHost = max(1, concurrency)
            configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
            configuration.urlCache = nil
            // Bodies go to the collector as they arrive, never into one unbounded buffer.
            let collector = BoundedBodyCollector(limit: maxBytes)
            self.collector = collector
            session = URLSession(configuration: configuration, delegate: collector, delegateQueue: nil)
        }
    }

    func finish() {
        session?.finishTasksAndInvalidate()
    }

    func fetch(_ location: String) async -> FetchOutcome {
        switch source {
        case .directory:
            return readFile(location)
        case .http:
            var attempt = 0
            while true {
                let outcome = await request(location)
                guard case .retryable(let reason) = outcome else {
                    switch outcome {
                    case .done(let result): return result
                    case .retryable: fatalError("unreachable")
                    }
                }
                if attempt >= retries || Task.isCancelled {
                    let tries = attempt + 1
                    return .failed(reason: tries > 1 ? "\(reason) (after \(tries) attempts)" : reason)
                }
                attempt += 1
                // Short exponential backoff: 100 ms, 200 ms, 400 ms, ...
                try? await Task.sleep(for: .milliseconds(100 << min(attempt - 1, 5)))
            }
        }
    }

    private enum Attempt {
        case done(FetchOutcome)
        case retryable(String)
    }

    private func request(_ location: String) async -> Attempt {
        guard let session, let collector, let url = URL(string: location) else {
            return .done(.failed(reason: "invalid URL"))
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = session.configuration.timeoutIntervalForRequest
        let result = await collector.load(request, in: session)
        // An oversized error page still answers with its status; an oversized success
        // fails the document whatever else went wrong, so it is not retried.
        let succeeded = result.status.map { (200..<300).contains($0) } ?? false
        if result.tooLarge && (succeeded || result.status == nil) {
            return .done(.failed(reason: tooLargeReason))
        }
        if !result.tooLarge, let error = result.error {
            switch error.code {
            case .badURL, .unsupportedURL, .cancelled:
                return .done(.failed(reason: Self.describe(error)))
            default:
                // Timeouts, refused or dropped connections, DNS and TLS hiccups.
                return .retryable(Self.describe(error))
            }
        }
        if !result.tooLarge, let other = result.otherError {
            return .retryable(other)
        }
        guard let status = result.status else {
            return .done(.failed(reason: "not an HTTP response"))
        }
        switch status {
        case 200..<300:
            return .done(.found([UInt8](result.body), charset: Self.charset(contentType: result.contentType)))
        case 404, 410:
            return .done(.notFound(reason: "HTTP \(status)"))
        case 408, 429, 500..<600:
            return .retryable("HTTP \(status)")
        default:
            return .done(.failed(reason: "HTTP \(status)"))
        }
    }

    private var tooLargeReason: String {
        let limit = maxBytes % (1024 * 1024) == 0 ? "\(maxBytes / (1024 * 1024)) MiB" : "\(maxBytes) bytes"
        return "larger than \(limit), the size limit for one file of the site"
    }

    private func readFile(_ path: String) -> FetchOutcome {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                return .notFound(reason: "no such file")
            }
            return .failed(reason: "cannot read file: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        // The size of the file opened (not of whatever the path names later) rejects a
        // large file before reading it; the bounded read covers a file that grows meanwhile
        // and devices or pipes, which have no size.
        var status = stat()
        if fstat(handle.fileDescriptor, &status) == 0, status.st_mode & mode_t(S_IFMT) == mode_t(S_IFREG),
           status.st_size > maxBytes {
            return .failed(reason: tooLargeReason)
        }
        do {
            let data = try handle.read(upToCount: maxBytes + 1) ?? Data()
            guard data.count <= maxBytes else { return .failed(reason: tooLargeReason) }
            return .found([UInt8](data), charset: nil)
        } catch {
            return .failed(reason: "cannot read file: \(error.localizedDescription)")
        }
    }

    private static func describe(_ error: URLError) -> String {
        switch error.code {
        case .timedOut: "timed out"
        case .cannotConnectToHost: "connection refused"
        case .networkConnectionLost: "connection lost"
        case .cannotFindHost, .dnsLookupFailed: "host not found"
        default: "URL error \(error.code.rawValue): \(error.localizedDescription)"
        }
    }

    static func charset(contentType: String?) -> String? {
        guard let contentType else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "charset" {
                let value = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"' "))
                return value.isEmpty ? nil : value
            }
        }
        return nil
    }
}

/// What one request through `BoundedBodyCollector` produced.
struct BoundedBody: Sendable {
    var body = Data()
    /// The HTTP status, nil when no HTTP response arrived.
    var status: Int?
    var contentType: String?
    var error: URLError?
    /// An error that is not a URLError, described.
    var otherError: String?
    /// The response announced or sent more than the limit; `body` is then empty.
    var tooLarge = false
}

/// The fetcher session's delegate: collects each response body up to a size bound and
/// cancels a request whose body announces or reaches more, so an oversized page is never
/// read whole. (URLSession's own `data(for:)` buffers any size, and `bytes(for:)` is not
/// available on Linux.)
///
/// `@unchecked Sendable` is safe because: `loads`, and every `Load` in it, is read and
/// written only while holding `lock`; `limit` is immutable; the continuation is taken out
/// of `loads` under the lock before it is resumed, so it is resumed once.
final class BoundedBodyCollector: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private final class Load {
        var result = BoundedBody()
        let continuation: CheckedContinuation<BoundedBody, Never>
        init(_ continuation: CheckedContinuation<BoundedBody, Never>) { self.continuation = continuation }
    }

    let limit: Int
    private let lock = NSLock()
    private var loads: [Int: Load] = [:]

    init(limit: Int) {
        self.limit = limit
    }

    /// Runs `request` on `session`, whose delegate must be this collector.
    func load(_ request: URLRequest, in session: URLSession) async -> BoundedBody {
        // A task cancelled before it is resumed may never complete: do not start one.
        if Task.isCancelled { return BoundedBody(error: URLError(.cancelled)) }
        let task = session.dataTask(with: request)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                lock.withLock { loads[task.taskIdentifier] = Load(continuation) }
                task.resume()
            }
        } onCancel: {
            task.cancel()
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        let tooLarge = lock.withLock { () -> Bool in
            guard let load = loads[dataTask.taskIdentifier], response.expectedContentLength > Int64(limit) else { return false }
            load.result.tooLarge = true
            return true
        }
        if tooLarge {
            // Cancelling the task as well: on Linux the `.cancel` disposition alone may not
            // stop the transfer.
            dataTask.cancel()
            completionHandler(.cancel)
        } else {
            completionHandler(.allow)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let tooLarge = lock.withLock { () -> Bool in
            guard let load = loads[dataTask.taskIdentifier], !load.result.tooLarge else { return false }
            guard data.count <= limit - load.result.body.count else {
                // Without a Content-Length, or past a wrong one: stop here, keep nothing.
                load.result.tooLarge = true
                load.result.body = Data()
                return true
            }
            load.result.body.append(data)
            return false
        }
        if tooLarge { dataTask.cancel() }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let load = lock.withLock({ loads.removeValue(forKey: task.taskIdentifier) }) else { return }
        var result = load.result
        if let http = task.response as? HTTPURLResponse {
            result.status = http.statusCode
            result.contentType = http.value(forHTTPHeaderField: "Content-Type")
        }
        if let error {
            if let error = error as? URLError {
                result.error = error
            } else {
                result.otherError = String(describing: error)
            }
        }
        load.continuation.resume(returning: result)
    }
}
