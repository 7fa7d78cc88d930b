import {
  DataSourceVariableSupport,
  type CoreApp,
  type DataSourceInstanceSettings,
  type ScopedVars,
} from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import { DEFAULT_QUERY, type ApiguardOptions, type ApiguardQuery } from './types';

/**
 * ApiguardDataSource sends every query to the Go backend (QueryData). It only
 * fills in template variables first; live queries get their channel from the
 * backend's answer (frame meta), which Grafana subscribes to by itself.
 */
export class ApiguardDataSource extends DataSourceWithBackend<ApiguardQuery, ApiguardOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<ApiguardOptions>) {
    super(instanceSettings);
    // Query variables use this data source's own query editor with the "variable" type.
    this.variables = new ApiguardVariableSupport();
  }

  getDefaultQuery(_: CoreApp): Partial<ApiguardQuery> {
    return DEFAULT_QUERY;
  }

  applyTemplateVariables(query: ApiguardQuery, scopedVars: ScopedVars): ApiguardQuery {
    const srv = getTemplateSrv();
    const text = (s?: string) => (s === undefined ? s : srv.replace(s, scopedVars));
    return {
      ...query,
      api: text(query.api),
      principalValue: text(query.principalValue),
      detector: text(query.detector),
      anomalyId: text(query.anomalyId),
      // The backend expands its own macros ($__timeFilter, $__interval_s);
      // dashboard variables are replaced here, SQL-quoted by the analyst.
      rawSql: text(query.rawSql),
    };
  }

  filterQuery(query: ApiguardQuery): boolean {
    return !query.hide && Boolean(query.queryType);
  }
}

class ApiguardVariableSupport extends DataSourceVariableSupport<ApiguardDataSource> {}
