import ClusterTestSupport
import Foundation
import Valkey

extension TestServers {
    static func cluster() throws -> ValkeyConfiguration {
        try ValkeyConfiguration(url: try variable("SYNC_TEST_VALKEY_CLUSTER_URL"))
    }
}
