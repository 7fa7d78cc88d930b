import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import { ApiguardDataSource } from './datasource';
import { QueryEditor } from './QueryEditor';
import type { ApiguardOptions, ApiguardQuery } from './types';

export const plugin = new DataSourcePlugin<ApiguardDataSource, ApiguardQuery, ApiguardOptions>(ApiguardDataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
