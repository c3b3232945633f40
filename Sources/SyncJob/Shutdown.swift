import Foundation
import Synchronization
import Timestamps

/// The signal that asked the run to stop (0: none). A global, so the C signal handler can
/// reach it; atomic operations are async-signal-safe.
private let requestedSignal = Atomic<Int32>(0)
/// Set once `--max-runtime` has passed.
private let deadlinePassed = Atomic<Bool>(false)

/// SIGTERM/SIGINT handling (SPEC §8): the first signal asks the run to stop after the batch
/// in flight (its watermark saved); a second one ends the process at once. After a clean
/// stop the process ends by the same signal, so shells see 143/130 and systemd a clean stop.
enum Shutdown {
    /// The signal that asked for the stop, or nil.
    static var requested: Int32? {
        let value = requestedSignal.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    /// True once the run should stop at its next safe point: by a signal or by `--max-runtime`.
    static var stopRequested: Bool { requested != nil || deadlineReached }

    /// True once `--max-runtime` has passed.
    static var deadlineReached: Bool { deadlinePassed.load(ordering: .relaxed) }

    /// Why the run stops early, for logs and the summary; nil when it does not.
    static var stopReason: String? {
        if let signal = requested { return signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)" }
        return deadlineReached ? "max-runtime" : nil
    }

    /// Asks the run to stop at its next safe point once `limit` has passed, as SIGTERM would.
    static func stop(after limit: Duration) {
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: limit.seconds)
            deadlinePassed.store(true, ordering: .relaxed)
        }
    }

    /// Installs the handlers synchronously (a signal arriving right after is never lost).
    static func install() {
        for number in [SIGTERM, SIGINT] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                let (first, _) = requestedSignal.compareExchange(expected: 0, desired: number, ordering: .relaxed)
                if !first {
                    // Second signal: the default action, now.
                    signal(number, SIG_DFL)
                    raise(number)
                }
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
    }

    /// Ends the process by `number` with its default action.
    static func exit(by number: Int32) -> Never {
        fflush(nil)
        signal(number, SIG_DFL)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        kill(getpid(), number)
        usleep(200_000)
        _exit(128 + number)
    }
}
