package shoplens;

import org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner;

/**
 * A small Elasticsearch cluster (several real nodes in one JVM) on 127.0.0.1 for ShopLens's tests and
 * local trials. Not for production. The arguments, ports and node control are ClusterLauncher's (shared
 * with OsCluster); this class adds only what Elasticsearch's cluster runner does differently.
 */
public final class EsCluster extends ElasticsearchClusterRunner implements ClusterLauncher.Runner {

    public static void main(final String[] args) {
        ClusterLauncher.run(args, "cluster.initial_master_nodes", new EsCluster());
    }

    @Override
    public void start(final ClusterLauncher.Cluster cluster) {
        onBuild((number, settings) -> cluster.configure(number, settings::put, settings::putList));
        build(newConfigs().basePath(cluster.dataPath()).numOfNode(cluster.nodes())
                .baseHttpPort(cluster.httpPort() - 1).clusterName(cluster.name()).disableESLogger());
    }
}
