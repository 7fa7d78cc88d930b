// Jest setup provided by Grafana scaffolding
import './.config/jest-setup';

// React 19's react-dom/server.browser, which @grafana/ui 13 imports, needs
// MessageChannel when it loads, and jsdom has none. Node's own would keep
// Jest from exiting (an open port), so a timer stands in for it.
class TimerMessageChannel {
  constructor() {
    this.port1 = { onmessage: null, close() {} };
    this.port2 = {
      postMessage: (data) => setTimeout(() => this.port1.onmessage?.({ data }), 0),
      close() {},
    };
  }
}
if (typeof global.MessageChannel === 'undefined') {
  Object.assign(global, { MessageChannel: TimerMessageChannel });
}

// @grafana/ui 13's Select menu watches its options with IntersectionObserver.
if (typeof global.IntersectionObserver === 'undefined') {
  Object.assign(global, {
    IntersectionObserver: class {
      observe() {}
      unobserve() {}
      disconnect() {}
      takeRecords() {
        return [];
      }
    },
  });
}
