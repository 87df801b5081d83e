package shoplens;

import com.carrotsearch.randomizedtesting.RandomizedRunner;
import com.carrotsearch.randomizedtesting.annotations.ThreadLeakScope;
import java.io.Closeable;
import java.util.ArrayList;
import java.util.List;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.node.MockNode;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.junit.Test;
import org.junit.runner.JUnitCore;
import org.junit.runner.RunWith;

/**
 * A small Elasticsearch 8 cluster (several real nodes in one JVM, the server and its netty4 transport from
 * Maven Central) on 127.0.0.1 for ShopLens's tests and local trials: dense_vector HNSW and kNN. Not for
 * production. Nodes are the test framework's MockNode, which needs a randomized-testing context: main runs
 * one JUnit "test" under RandomizedRunner that starts the cluster and serves ClusterLauncher's node control.
 */
@RunWith(RandomizedRunner.class)
@ThreadLeakScope(ThreadLeakScope.Scope.NONE)
public class Es8Cluster {

    private static String[] arguments;

    public static void main(final String[] args) {
        arguments = args;
        System.exit(JUnitCore.runClasses(Es8Cluster.class).wasSuccessful() ? 0 : 1);
    }

    @Test
    public void cluster() {
        ClusterLauncher.run(arguments, "cluster.initial_master_nodes", new Nodes());
    }

    /** The nodes, started in order; node index i is node number i + 1. */
    static final class Nodes implements ClusterLauncher.Runner {
        private final List<Settings> settings = new ArrayList<>();
        private final List<Node> nodes = new ArrayList<>();

        @Override
        public void start(final ClusterLauncher.Cluster cluster) throws Exception {
            for (int number = 1; number <= cluster.nodes(); number++) {
                final Settings.Builder builder = Settings.builder()
                    .put("cluster.name", cluster.name())
                    .put("path.home", cluster.base().resolve("home-" + number).toString())
                    .put("path.data", cluster.base().resolve("nodes").resolve("node-" + number).toString())
                    .put("http.type", "netty4").put("transport.type", "netty4")
                    // the tests drop their indices by pattern (shoplens-test-*); ShopLens itself names each one
                    .put("action.destructive_requires_name", "false");
                cluster.configure(number, builder::put, builder::putList);
                settings.add(builder.build());
                nodes.add(null);
            }
            for (int index = 0; index < settings.size(); index++) {
                startNode(index);
            }
        }

        @Override
        public Closeable getNode(final int index) {
            final Node node = nodes.get(index);
            return node == null ? () -> { } : () -> {
                node.close();
                nodes.set(index, null);
            };
        }

        @Override
        public boolean startNode(final int index) {
            if (nodes.get(index) != null) {
                return false;
            }
            try {
                final Node node = new MockNode(settings.get(index),
                    List.<Class<? extends Plugin>>of(Netty4Plugin.class, Es8Analysis.class));
                node.start();
                nodes.set(index, node);
                return true;
            } catch (final Exception e) {
                throw new IllegalStateException("node " + (index + 1) + " did not start", e);
            }
        }

        @Override
        public void setMaxHttpPort(final int port) {
        }

        @Override
        public void close() {
            for (int index = nodes.size() - 1; index >= 0; index--) {
                final Node node = nodes.get(index);
                if (node != null) {
                    try {
                        node.close();
                    } catch (final Exception e) {
                        // closing anyway
                    }
                }
            }
        }
    }
}
