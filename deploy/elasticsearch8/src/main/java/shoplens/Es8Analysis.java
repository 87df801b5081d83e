package shoplens;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;
import java.util.regex.Pattern;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.miscellaneous.LengthFilter;
import org.apache.lucene.analysis.pattern.PatternTokenizer;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.regex.Regex;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.analysis.AbstractTokenFilterFactory;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;
import org.tartarus.snowball.ext.EnglishStemmer;

/**
 * What the local Elasticsearch 8 cluster takes from modules Maven Central does not serve (analysis-common,
 * rest-root), written on the Lucene classes those modules wrap: the analysis ShopLens's index settings name
 * (the pattern tokenizer, the length, asciifolding and porter2 stemmer filters; lowercase and stop are the
 * server's own) and GET / (the cluster's name and version, which clients read first). Tests and local trials.
 */
public final class Es8Analysis extends Plugin implements AnalysisPlugin, ActionPlugin {

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("pattern", (index, env, name, settings) -> {
            final Pattern pattern = Regex.compile(settings.get("pattern", "\\W+"), settings.get("flags"));
            final int group = settings.getAsInt("group", -1);
            return TokenizerFactory.newFactory(name, () -> new PatternTokenizer(pattern, group));
        });
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            "length", (index, env, name, settings) -> filter(name, settings, stream -> new LengthFilter(stream,
                settings.getAsInt("min", 0), settings.getAsInt("max", Integer.MAX_VALUE))),
            "asciifolding", (index, env, name, settings) -> filter(name, settings,
                stream -> new ASCIIFoldingFilter(stream, settings.getAsBoolean("preserve_original", false))),
            "stemmer", (index, env, name, settings) -> {
                final String language = settings.get("language", settings.get("name", "porter2"));
                if (!"porter2".equals(language) && !"english".equals(language)) {
                    throw new IllegalArgumentException("this local cluster's stemmer knows porter2 only, not " + language);
                }
                return filter(name, settings, stream -> new SnowballFilter(stream, new EnglishStemmer()));
            });
    }

    private static TokenFilterFactory filter(final String name, final Settings settings,
            final java.util.function.UnaryOperator<TokenStream> wrap) {
        return new AbstractTokenFilterFactory(name, settings) {
            @Override
            public TokenStream create(final TokenStream stream) {
                return wrap.apply(stream);
            }
        };
    }

    @Override
    public Collection<RestHandler> getRestHandlers(final Settings settings, final NamedWriteableRegistry registry,
            final RestController controller, final ClusterSettings clusterSettings,
            final IndexScopedSettings indexScopedSettings, final SettingsFilter settingsFilter,
            final IndexNameExpressionResolver resolver, final Supplier<DiscoveryNodes> nodes,
            final Predicate<NodeFeature> features) {
        final String clusterName = settings.get("cluster.name");
        final String nodeName = settings.get("node.name");
        return List.of(new BaseRestHandler() {
            @Override
            public String getName() {
                return "shoplens_main";
            }

            @Override
            public List<Route> routes() {
                return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
            }

            @Override
            protected RestChannelConsumer prepareRequest(final RestRequest request, final NodeClient client) {
                return channel -> {
                    final XContentBuilder body = channel.newBuilder();
                    body.startObject().field("name", nodeName).field("cluster_name", clusterName)
                        .startObject("version").field("number", Build.current().version())
                        .field("build_flavor", "default").field("build_type", "tar")
                        .field("lucene_version", org.apache.lucene.util.Version.LATEST.toString())
                        .endObject().field("tagline", "You Know, for Search").endObject();
                    channel.sendResponse(new RestResponse(RestStatus.OK, body));
                };
            }
        });
    }
}
