import Foundation
import Synchronization

/// SIGTERM/SIGINT handling (SPEC §8): the first signal asks the run to stop after the batch
/// in flight (its watermark saved); a second one ends the process at once. After a clean
/// stop the process ends by the same signal, so shells see 143/130 and systemd a clean stop.
final class Shutdown: Sendable {
    static let shared = Shutdown()

    private let signal = Atomic<Int32>(0)
    // Dispatch sources must stay alive; they are only touched in `install`, once, at start.
    private nonisolated(unsafe) var sources: [any DispatchSourceSignal] = []

    /// The signal that asked for the stop, or nil.
    var requested: Int32? {
        let value = signal.load(ordering: .relaxed)
        return value == 0 ? nil : value
    }

    /// Installs the handlers; call once, before the run starts.
    func install(onFirstSignal: @escaping @Sendable (Int32) -> Void) {
        for number in [SIGTERM, SIGINT] {
            Foundation.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                let (exchanged, _) = signal.compareExchange(expected: 0, desired: number, ordering: .relaxed)
                if exchanged {
                    onFirstSignal(number)
                } else {
                    Self.exit(by: number)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Ends the process by `number` with its default action.
    static func exit(by number: Int32) -> Never {
        Foundation.signal(number, SIG_DFL)
        // Dispatch may block the signal in this thread: unblock it, and send it to the
        // process so that any thread can take it.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        kill(getpid(), number)
        usleep(200_000)
        _exit(128 + number)
    }
}
