// force timezone to UTC to allow tests to work regardless of local timezone
process.env.TZ = 'UTC';

const base = require('./.config/jest.config');
const { grafanaESModules, nodeModulesToTransform } = require('./.config/jest/utils');
const swc = base.transform['^.+\\.(t|j)sx?$'];

// @grafana/* 13 pulls in packages that ship only ES modules, some as .mjs;
// the scaffold's lists (written for 12.x) miss these.
const moreESModules = [
  '@grafana/react-data-grid',
  '@react-hookz/web',
  '@ver0/deep-equal',
  '@zarrita/storage',
  'd3-array',
  'd3-format',
  'd3-scale',
  'd3-time',
  'd3-time-format',
  'earcut',
  'internmap',
  'numcodecs',
  'pbf',
  'quick-lru',
  'quickselect',
  'rbush',
  'reference-spec-reader',
  'unzipit',
  'uwrap',
  'zarrita',
];

module.exports = {
  ...base,
  transform: { '^.+\\.(t|j)sx?$': swc, '^.+\\.mjs$': swc },
  transformIgnorePatterns: [nodeModulesToTransform([...grafanaESModules, ...moreESModules])],
};
