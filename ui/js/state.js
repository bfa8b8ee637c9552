// App-wide facts the tabs share (app_info, the loaded model) and a tiny event hub,
// so tabs never reach into each other.
const handlers = {};

export const app = { info: null, model: null };

export function on(event, fn) { (handlers[event] ||= []).push(fn); }
export function emit(event, data) { for (const fn of handlers[event] || []) fn(data); }

/** Record model_info (loaded or not) and tell everyone. */
export function setModel(info) {
  app.model = info && info.loaded ? info : null;
  emit("model", app.model);
}
