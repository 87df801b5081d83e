package shoplens;

import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

import org.codelibs.opensearch.runner.OpenSearchRunner;
import org.opensearch.node.Node;

/**
 * Starts a small OpenSearch cluster (several real nodes in one JVM) on 127.0.0.1 for ShopLens's
 * tests and local trials, with the k-NN plugin (HNSW vectors; Lucene engine only: the plugin's
 * native faiss / nmslib libraries are not on Maven Central). Not for production.
 *
 * Arguments: BASE_DIR NODES HTTP_PORT TRANSPORT_PORT. Node i (1-based) listens on HTTP_PORT+i-1 and
 * TRANSPORT_PORT+i-1. While it runs, a file named "stop-N" (or "start-N") dropped into
 * BASE_DIR/control stops (or restarts) node N; the answer is a file "done-stop-N" ("done-start-N").
 * That is how the fault tests take one node away in the middle of an update.
 */
public final class OsCluster {

    private OsCluster() {
    }

    public static void main(final String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: OsCluster BASE_DIR NODES HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        final Path base = Paths.get(args[0]).toAbsolutePath();
        final int nodes = Integer.parseInt(args[1]);
        final int httpPort = Integer.parseInt(args[2]);
        final int transportPort = Integer.parseInt(args[3]);
        final List<String> names = new ArrayList<>();
        final List<String> seeds = new ArrayList<>();
        for (int i = 1; i <= nodes; i++) {
            names.add("node-" + i);
            seeds.add("127.0.0.1:" + (transportPort + i - 1));
        }
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild((number, settings) -> {
            final int offset = number - 1;
            settings.put("node.name", names.get(offset));
            settings.put("network.host", "127.0.0.1");
            settings.put("http.port", String.valueOf(httpPort + offset));
            settings.put("transport.port", String.valueOf(transportPort + offset));
            settings.putList("discovery.seed_hosts", seeds);
            settings.putList("cluster.initial_cluster_manager_nodes", names);
            // One machine: free-disk watermarks would block shard allocation on a full laptop or CI disk.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
            // Three nodes share the machine's cores: keep each node's thread pools small.
            settings.put("node.processors", "1");
            settings.put("action.auto_create_index", "false");
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final Exception e) {
                // the JVM is going away anyway
            }
        }));
        runner.setMaxHttpPort(-1); // the ports are chosen by os.sh and set per node above
        runner.build(OpenSearchRunner.newConfigs()
                .basePath(base.resolve("nodes").toString())
                .numOfNode(nodes)
                .baseHttpPort(httpPort - 1)
                .clusterName("shoplens-" + httpPort)
                .pluginTypes("org.opensearch.knn.plugin.KNNPlugin")
                .disableESLogger());
        System.out.println("cluster started: " + nodes + " nodes, http " + httpPort + "-" + (httpPort + nodes - 1));
        watchControl(runner, base.resolve("control"), names);
    }

    /** Serves stop-N / start-N requests until the JVM is told to exit. */
    private static void watchControl(final OpenSearchRunner runner, final Path control,
            final List<String> names) throws Exception {
        Files.createDirectories(control);
        while (true) {
            try (DirectoryStream<Path> requests = Files.newDirectoryStream(control, "st*-*")) {
                for (final Path request : requests) {
                    final String name = request.getFileName().toString();
                    final int number = Integer.parseInt(name.substring(name.indexOf('-') + 1));
                    final Node node = findNode(runner, names.get(number - 1));
                    if (name.startsWith("stop-") && node != null && !node.isClosed()) {
                        node.close();
                    } else if (name.startsWith("start-")) {
                        runner.startNode(runner.getNodeIndex(node));
                    }
                    Files.delete(request);
                    Files.writeString(control.resolve("done-" + name), "ok\n");
                    System.out.println("control: " + name + " done");
                }
            }
            Thread.sleep(200);
        }
    }

    private static Node findNode(final OpenSearchRunner runner, final String name) {
        for (int i = 0; i < runner.getNodeSize(); i++) {
            final Node node = runner.getNode(i);
            if (node != null && name.equals(node.settings().get("node.name"))) {
                return node;
            }
        }
        return null;
    }
}
