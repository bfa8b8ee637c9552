// Every view's defaults for the loaded model, from one Api call (`defaults`, backend/defaults.py):
// one budget (C, S, W) and one text per model, Evaluate sized to about a minute on this device,
// Retrieval's grid and presets, and a note where a view differs. Read once per loaded model; each
// tab listens to the "defaults" event and fills the fields the user has not typed in.
import { call } from "./bridge.js";
import { on, emit } from "./state.js";

let current = null;
let seq = 0;

/** The defaults for the loaded model (null before one is loaded or while they are read). */
export function modelDefaults() { return current; }

on("model", async (model) => {
  const mine = ++seq;
  current = null;
  if (!model) return;
  const res = await call("defaults");
  if (mine !== seq || !res.ok || !res.loaded) return;  // another model came meanwhile
  current = res;
  emit("defaults", res);
});
