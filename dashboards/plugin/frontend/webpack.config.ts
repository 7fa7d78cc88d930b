/*
 * Builds the app (src/module.tsx) and its nested data source
 * (src/datasource/module.ts) into dist/ as Grafana loads them: AMD modules,
 * Grafana's own packages external, plugin.json files with %VERSION% and
 * %TODAY% filled in. Taken from @grafana/create-plugin 7.1.7's
 * .config/webpack/webpack.config.ts, less its development server, linting
 * and Sass. The Go executables that `make plugin` puts in dist/datasource/
 * survive the build's clean of dist/.
 */
import CopyWebpackPlugin from 'copy-webpack-plugin';
import path from 'path';
import fs from 'fs';
import ReplaceInFileWebpackPlugin from 'replace-in-file-webpack-plugin';
import TerserPlugin from 'terser-webpack-plugin';
import webpack, { type Configuration } from 'webpack';
import { SubresourceIntegrityPlugin } from 'webpack-subresource-integrity';
import VirtualModulesPlugin from 'webpack-virtual-modules';

import { externals } from './.config/bundler/externals';

const SRC = path.resolve(__dirname, 'src');
const DIST = path.resolve(__dirname, 'dist');

const pluginJson = JSON.parse(fs.readFileSync(path.join(SRC, 'plugin.json'), 'utf8'));
const version: string = JSON.parse(fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8')).version;

// Each module finds its own files under the URL Grafana loaded it from.
const publicPath = new VirtualModulesPlugin({
  'node_modules/grafana-public-path.js': `
import amdMetaModule from 'amd-module';
__webpack_public_path__ =
  amdMetaModule && amdMetaModule.uri
    ? amdMetaModule.uri.slice(0, amdMetaModule.uri.lastIndexOf('/') + 1)
    : 'public/plugins/${pluginJson.id}/';
`,
});

type Env = Record<string, unknown>;

const config = (env: Env): Configuration => ({
  context: SRC,
  mode: env.production ? 'production' : 'development',
  devtool: env.production ? 'source-map' : 'eval-source-map',
  entry: {
    module: './module.tsx',
    'datasource/module': './datasource/module.ts',
  },
  externals,
  module: {
    rules: [
      // Must come first, or it breaks source maps.
      {
        test: /src\/(?:.*\/)?module\.tsx?$/,
        use: [{ loader: 'imports-loader', options: { imports: 'side-effects grafana-public-path' } }],
      },
      {
        exclude: /node_modules/,
        test: /\.[tj]sx?$/,
        use: {
          loader: 'swc-loader',
          options: {
            jsc: {
              baseUrl: SRC,
              target: 'es2015',
              parser: { syntax: 'typescript', tsx: true, decorators: false, dynamicImport: true },
            },
          },
        },
      },
      { test: /\.css$/, use: ['style-loader', 'css-loader'] },
    ],
  },
  optimization: {
    minimize: Boolean(env.production),
    minimizer: [new TerserPlugin({ terserOptions: { compress: { drop_console: ['log', 'info'] } } })],
  },
  output: {
    // Keep the backend executables (gpx_apiguard_linux_amd64, …) built before this.
    clean: { keep: /(.*?_(amd64|arm(64)?)(.exe)?|go_plugin_build_manifest)/ },
    filename: '[name].js',
    chunkFilename: env.production ? '[name].js?_cache=[contenthash]' : '[name].js',
    library: { type: 'amd' },
    path: DIST,
    publicPath: `public/plugins/${pluginJson.id}/`,
    uniqueName: pluginJson.id,
    crossOriginLoading: 'anonymous',
  },
  plugins: [
    publicPath,
    new CopyWebpackPlugin({
      patterns: [
        { from: '../README.md', to: '.' },
        { from: 'plugin.json', to: '.' },
        { from: 'img', to: 'img' },
        { from: 'datasource/plugin.json', to: 'datasource' },
        { from: 'datasource/img', to: 'datasource/img' },
      ],
    }),
    new ReplaceInFileWebpackPlugin([
      {
        dir: DIST,
        test: [/(^|\/)plugin\.json$/],
        rules: [
          { search: /%VERSION%/g, replace: version },
          { search: /%TODAY%/g, replace: new Date().toISOString().substring(0, 10) },
        ],
      },
    ]),
    new SubresourceIntegrityPlugin({ hashFuncNames: ['sha256'] }),
    new webpack.BannerPlugin({ banner: `/* ${pluginJson.id}@${version} */`, raw: true, entryOnly: true }),
  ],
  resolve: {
    extensions: ['.js', '.jsx', '.ts', '.tsx'],
    modules: [SRC, 'node_modules'],
  },
});

export default config;
