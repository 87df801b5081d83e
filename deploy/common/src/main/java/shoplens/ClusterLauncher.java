package shoplens;

import java.io.Closeable;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BiConsumer;

/**
 * Starts a small cluster (several real nodes in one JVM) on 127.0.0.1 for ShopLens's tests and local
 * trials, and serves node stop / start requests while it runs. Not for production. Shared by EsCluster
 * (Elasticsearch) and OsCluster (OpenSearch): deploy/pom.xml compiles this file into both Maven projects,
 * and each supplies only what differs, through {@link Runner} (mostly inherited from its cluster runner).
 *
 * Arguments: BASE_DIR NODES HTTP_PORT TRANSPORT_PORT. Node i (1-based) listens on HTTP_PORT+i-1 and
 * TRANSPORT_PORT+i-1. While it runs, a file named "stop-N" (or "start-N") dropped into
 * BASE_DIR/control stops (or restarts) node N; the answer is a file "done-stop-N" ("done-start-N").
 * That is how the fault tests take one node away in the middle of an update.
 */
public final class ClusterLauncher {

    private ClusterLauncher() {
    }

    /** What differs between the servers: EsCluster and OsCluster inherit all but start from their runner. */
    public interface Runner extends Closeable {
        /** Starts the cluster's nodes, node number n (1-based) configured by {@link Cluster#configure}. */
        void start(Cluster cluster) throws Exception;

        /** The node at this index (node number index + 1); closing it again does nothing. */
        Closeable getNode(int index);

        /** Starts the stopped node at this index again. */
        boolean startNode(int index);

        /** -1: the runner takes the ports it is given; otherwise it refuses HTTP ports above this one. */
        void setMaxHttpPort(int port);
    }

    /** The command line's cluster; mastersSetting names the server's initial master nodes setting. */
    public record Cluster(Path base, int nodes, int httpPort, int transportPort, String mastersSetting) {

        public String name() {
            return "shoplens-" + httpPort;
        }

        public String dataPath() {
            return base.resolve("nodes").toString();
        }

        /** Puts node number's (1-based) settings through the runner's settings builder. */
        public void configure(final int number, final BiConsumer<String, String> put,
                final BiConsumer<String, List<String>> putList) {
            final List<String> names = new ArrayList<>();
            final List<String> seeds = new ArrayList<>();
            for (int i = 1; i <= nodes; i++) {
                names.add("node-" + i);
                seeds.add("127.0.0.1:" + (transportPort + i - 1));
            }
            put.accept("node.name", names.get(number - 1));
            put.accept("network.host", "127.0.0.1");
            put.accept("http.port", String.valueOf(httpPort + number - 1));
            put.accept("transport.port", String.valueOf(transportPort + number - 1));
            putList.accept("discovery.seed_hosts", seeds);
            putList.accept(mastersSetting, names);
            // One machine: free-disk watermarks would block shard allocation on a full laptop or CI disk.
            put.accept("cluster.routing.allocation.disk.threshold_enabled", "false");
            // Three nodes share the machine's cores: keep each node's thread pools small.
            put.accept("node.processors", "1");
            put.accept("action.auto_create_index", "false");
            // The JVM runs the serial collector (small heap, 2 cores), whose old generation holds garbage until a
            // full collection: counting the heap's real use, the parent circuit breaker refused requests (429)
            // with nothing reserved after a few large indexes were made and deleted. Count reservations only.
            put.accept("indices.breaker.total.use_real_memory", "false");
        }
    }

    /**
     * The main of EsCluster and OsCluster: starts the cluster, then serves control requests until killed. A
     * failure exits the JVM (status 1) after printing it, so a half-started cluster does not linger.
     */
    public static void run(final String[] args, final String mastersSetting, final Runner runner) {
        try {
            launch(args, mastersSetting, runner);
        } catch (final Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void launch(final String[] args, final String mastersSetting, final Runner runner)
            throws Exception {
        if (args.length != 4) {
            System.err.println("usage: " + runner.getClass().getSimpleName()
                    + " BASE_DIR NODES HTTP_PORT TRANSPORT_PORT");
            System.exit(2);
        }
        final Cluster cluster = new Cluster(Paths.get(args[0]).toAbsolutePath(), Integer.parseInt(args[1]),
                Integer.parseInt(args[2]), Integer.parseInt(args[3]), mastersSetting);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final Exception e) {
                // the JVM is going away anyway
            }
        }));
        runner.setMaxHttpPort(-1); // the ports are the script's, set per node by Cluster.configure
        runner.start(cluster);
        System.out.println("cluster started: " + cluster.nodes() + " nodes, http " + cluster.httpPort() + "-"
                + (cluster.httpPort() + cluster.nodes() - 1));
        watchControl(runner, cluster.base().resolve("control"));
    }

    /** Serves stop-N / start-N requests until the JVM is told to exit. */
    private static void watchControl(final Runner runner, final Path control) throws Exception {
        Files.createDirectories(control);
        while (true) {
            try (DirectoryStream<Path> requests = Files.newDirectoryStream(control, "st*-*")) {
                for (final Path request : requests) {
                    final String name = request.getFileName().toString();
                    // the runners keep node number N at index N - 1, also after a restart
                    final int index = Integer.parseInt(name.substring(name.indexOf('-') + 1)) - 1;
                    if (name.startsWith("stop-")) {
                        runner.getNode(index).close();
                    } else if (name.startsWith("start-")) {
                        runner.startNode(index);
                    }
                    Files.delete(request);
                    Files.writeString(control.resolve("done-" + name), "ok\n");
                    System.out.println("control: " + name + " done");
                }
            }
            Thread.sleep(200);
        }
    }
}
