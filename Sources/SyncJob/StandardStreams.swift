import Foundation

/// Writes to stderr that never stop the job (SPEC §11): a stderr that is closed, full or a
/// broken pipe loses the text, never the run. `FileHandle.write` traps on such an error;
/// this writes with write(2) and drops what cannot be written.
enum StandardStreams {
    /// A closed pipe must not kill the process with SIGPIPE: writes then fail with EPIPE,
    /// which is ignored like any other failed write. Sockets are unaffected (NIO asks for
    /// MSG_NOSIGNAL itself).
    static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    static func writeError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
