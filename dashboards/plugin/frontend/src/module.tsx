import React from 'react';
import { AppPlugin, type AppRootProps } from '@grafana/data';
import { PluginPage } from '@grafana/runtime';

import { Investigate } from './pages/Investigate';

/** The app has one page, Investigate; the nested data source does the rest. */
function App(_: AppRootProps) {
  return (
    <PluginPage>
      <Investigate />
    </PluginPage>
  );
}

export const plugin = new AppPlugin<{}>().setRootPage(App);
