import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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
enum FetchOutcome: Sendable {
    /// The body, and the charset the server declared for it, if any.
    case found([UInt8], charset: String?)
    case notFound(reason: String)
    case failed(reason: String)
}

/// Reads files of the site with a per-request timeout and retries for transient failures.
struct DocumentFetcher: Sendable {
    let source: DocumentSource
    let timeout: Duration
    let retries: Int
    let session: URLSession?

    init(source: DocumentSource, timeout: Duration, retries: Int, concurrency: Int) {
        self.source = source
        self.timeout = timeout
        self.retries = max(0, retries)
        switch source {
        case .directory:
            session = nil
        case .http:
            let configuration = URLSessionConfiguration.ephemeral
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            configuration.timeoutIntervalForRequest = seconds
            configuration.timeoutIntervalForResource = seconds
            configuration.httpMaximumConnectionsPerHost = max(1, concurrency)
            configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
            configuration.urlCache = nil
            session = URLSession(configuration: configuration)
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
        guard let session, let url = URL(string: location) else {
            return .done(.failed(reason: "invalid URL"))
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = session.configuration.timeoutIntervalForRequest
        do {
            let (data, response) = try await session.data(for: request)
            guard let http = response as? HTTPURLResponse else {
                return .done(.failed(reason: "not an HTTP response"))
            }
            switch http.statusCode {
            case 200..<300:
                return .done(.found([UInt8](data), charset: Self.charset(contentType: http.value(forHTTPHeaderField: "Content-Type"))))
            case 404, 410:
                return .done(.notFound(reason: "HTTP \(http.statusCode)"))
            case 408, 429, 500..<600:
                return .retryable("HTTP \(http.statusCode)")
            default:
                return .done(.failed(reason: "HTTP \(http.statusCode)"))
            }
        } catch let error as URLError {
            switch error.code {
            case .badURL, .unsupportedURL, .cancelled:
                return .done(.failed(reason: Self.describe(error)))
            default:
                // Timeouts, refused or dropped connections, DNS and TLS hiccups.
                return .retryable(Self.describe(error))
            }
        } catch {
            return .retryable(String(describing: error))
        }
    }

    private func readFile(_ path: String) -> FetchOutcome {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
            return .found([UInt8](data), charset: nil)
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile || error.code == .fileNoSuchFile {
            return .notFound(reason: "no such file")
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                return .notFound(reason: "no such file")
            }
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
