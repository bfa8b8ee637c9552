// Perceptually uniform colormap (viridis: dark purple = low, bright yellow = high) as a
// 256-entry RGB lookup table, from the polynomial fit of matplotlib's viridis
// (max error well under one 8-bit step), so no data file is needed.
const C = [
  [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
  [0.1050930431085774, 1.404613529898575, 1.384590162594685],
  [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
  [-4.634230498983486, -5.799100973351585, -19.33244095627987],
  [6.228269936347081, 14.17993336680509, 56.69055260068105],
  [4.776384997670288, -13.74514537774601, -65.35303263337234],
  [-5.435455855934631, 4.645852612178535, 26.3124352495832],
];

/** LUT[i*3 + c] for i in 0..255. */
export const LUT = (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    for (let c = 0; c < 3; c++) {
      let v = 0;
      for (let k = 6; k >= 0; k--) v = v * t + C[k][c];
      lut[i * 3 + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return lut;
})();

/** Value in [0, 1] → LUT index, through a display scale (weights are heavy-tailed). */
export function scaler(scale) {
  if (scale === "linear") return (w) => w;
  if (scale === "log") return (w) => (w <= 1e-4 ? 0 : (Math.log10(w) + 4) / 4);  // 1e-4 .. 1
  return Math.sqrt;  // default: sqrt keeps small weights visible without hiding the peaks
}

export function cssColor(t) {
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${LUT[i]},${LUT[i + 1]},${LUT[i + 2]})`;
}
