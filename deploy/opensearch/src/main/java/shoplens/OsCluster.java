package shoplens;

import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * A small OpenSearch cluster (several real nodes in one JVM) on 127.0.0.1 for ShopLens's tests and local
 * trials, with the k-NN plugin (HNSW vectors; Lucene engine only: the plugin's native faiss / nmslib
 * libraries are not on Maven Central). Not for production. The arguments, ports and node control are
 * ClusterLauncher's (shared with EsCluster); this class adds only what OpenSearch's runner does differently.
 */
public final class OsCluster extends OpenSearchRunner implements ClusterLauncher.Runner {

    public static void main(final String[] args) {
        ClusterLauncher.run(args, "cluster.initial_cluster_manager_nodes", new OsCluster());
    }

    @Override
    public void start(final ClusterLauncher.Cluster cluster) {
        onBuild((number, settings) -> cluster.configure(number, settings::put, settings::putList));
        build(newConfigs().basePath(cluster.dataPath()).numOfNode(cluster.nodes())
                .baseHttpPort(cluster.httpPort() - 1).clusterName(cluster.name())
                .pluginTypes("org.opensearch.knn.plugin.KNNPlugin").disableESLogger());
    }
}
