/*
 * Convolution explorer: the sliding window of chapter 1, in the browser.
 *
 * No server, no Python, no CDN. The pure functions at the top are the arithmetic that
 * chapter 1 derives (cross-correlation, as F.conv2d computes it, and the output-size
 * formula); tests/test_browser.py compares `window.courseExplorer.convolve` with
 * F.conv2d. Below them, `mountExplorer` builds the interactive widget inside every
 * element with the attribute `data-course-explorer` (see explorer.md).
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------ arithmetic

  /** floor((n + 2p - d(k - 1) - 1) / s) + 1, the output size of chapter 1. */
  function outputSize(n, k, stride, padding, dilation) {
    return Math.floor((n + 2 * padding - dilation * (k - 1) - 1) / stride) + 1;
  }

  function checkInteger(value, name, minimum) {
    if (!Number.isInteger(value) || value < minimum) {
      throw new RangeError(name + " must be an integer >= " + minimum + ", got " + value);
    }
    return value;
  }

  /** A rectangular nested array of finite numbers as {data, height, width}. */
  function toMatrix(rows, name) {
    if (!Array.isArray(rows) || rows.length === 0 || !Array.isArray(rows[0])) {
      throw new TypeError(name + " must be a non-empty array of rows (H x W numbers)");
    }
    const height = rows.length;
    const width = rows[0].length;
    if (width === 0) {
      throw new TypeError(name + " must have at least one column");
    }
    const data = new Float64Array(height * width);
    for (let i = 0; i < height; i++) {
      const row = rows[i];
      if (!Array.isArray(row) || row.length !== width) {
        throw new TypeError(name + " must be rectangular: row " + i + " has " +
          (Array.isArray(row) ? row.length : "no") + " entries, row 0 has " + width);
      }
      for (let j = 0; j < width; j++) {
        const value = row[j];
        if (typeof value !== "number" || !Number.isFinite(value)) {
          throw new TypeError(name + "[" + i + "][" + j + "] must be a finite number, got " +
            value);
        }
        data[i * width + j] = value;
      }
    }
    return { data: data, height: height, width: width };
  }

  function normaliseOptions(options) {
    options = options || {};
    const result = {
      stride: options.stride === undefined ? 1 : options.stride,
      padding: options.padding === undefined ? 0 : options.padding,
      dilation: options.dilation === undefined ? 1 : options.dilation,
      paddingMode: options.paddingMode === undefined ? "zeros" : options.paddingMode,
    };
    checkInteger(result.stride, "stride", 1);
    checkInteger(result.padding, "padding", 0);
    checkInteger(result.dilation, "dilation", 1);
    if (result.paddingMode !== "zeros" && result.paddingMode !== "reflect") {
      throw new RangeError("paddingMode must be 'zeros' or 'reflect', got " +
        result.paddingMode);
    }
    return result;
  }

  /** Index of a padded coordinate in the original image ("reflect" mirrors about the
   * edge pixel without repeating it, as PyTorch's padding_mode="reflect"). */
  function reflectIndex(index, size) {
    if (size === 1) {
      return 0;
    }
    const period = 2 * (size - 1);
    index = ((index % period) + period) % period;
    return index < size ? index : period - index;
  }

  /** The image with `padding` extra pixels on every side, as one flat array. */
  function pad(image, padding, mode) {
    const height = image.height + 2 * padding;
    const width = image.width + 2 * padding;
    const data = new Float64Array(height * width);
    for (let i = 0; i < height; i++) {
      const sourceRow = i - padding;
      const insideRow = sourceRow >= 0 && sourceRow < image.height;
      if (!insideRow && mode === "zeros") {
        continue;
      }
      const row = insideRow ? sourceRow : reflectIndex(sourceRow, image.height);
      for (let j = 0; j < width; j++) {
        const sourceColumn = j - padding;
        const insideColumn = sourceColumn >= 0 && sourceColumn < image.width;
        if (!insideColumn && mode === "zeros") {
          continue;
        }
        const column = insideColumn ? sourceColumn : reflectIndex(sourceColumn, image.width);
        data[i * width + j] = image.data[row * image.width + column];
      }
    }
    return { data: data, height: height, width: width };
  }

  /**
   * Cross-correlation of one channel with one kernel (no kernel flip, like F.conv2d):
   * out[i][j] = sum over (u, v) of kernel[u][v] * padded[i*s + u*d][j*s + v*d].
   * `image` and `kernel` are {data, height, width}; returns the same kind of object.
   */
  function correlate(image, kernel, options) {
    const o = normaliseOptions(options);
    if (o.paddingMode === "reflect" &&
        (o.padding >= image.height || o.padding >= image.width)) {
      throw new RangeError("reflect padding must be smaller than the image (" +
        image.height + " x " + image.width + "), got " + o.padding);
    }
    const outHeight = outputSize(image.height, kernel.height, o.stride, o.padding, o.dilation);
    const outWidth = outputSize(image.width, kernel.width, o.stride, o.padding, o.dilation);
    if (outHeight < 1 || outWidth < 1) {
      throw new RangeError("the dilated kernel (" +
        (o.dilation * (kernel.height - 1) + 1) + " x " + (o.dilation * (kernel.width - 1) + 1) +
        ") does not fit in the padded image (" + (image.height + 2 * o.padding) + " x " +
        (image.width + 2 * o.padding) + ")");
    }
    const padded = o.padding > 0 ? pad(image, o.padding, o.paddingMode) : image;
    const source = padded.data;
    const stride = padded.width;
    const weights = kernel.data;
    const kh = kernel.height;
    const kw = kernel.width;
    const out = new Float64Array(outHeight * outWidth);
    for (let i = 0; i < outHeight; i++) {
      const top = i * o.stride;
      for (let j = 0; j < outWidth; j++) {
        const left = j * o.stride;
        let sum = 0;
        for (let u = 0; u < kh; u++) {
          const base = (top + u * o.dilation) * stride + left;
          const kernelRow = u * kw;
          for (let v = 0; v < kw; v++) {
            sum += weights[kernelRow + v] * source[base + v * o.dilation];
          }
        }
        out[i * outWidth + j] = sum;
      }
    }
    return { data: out, height: outHeight, width: outWidth };
  }

  function toNested(matrix) {
    const rows = [];
    for (let i = 0; i < matrix.height; i++) {
      rows.push(Array.from(matrix.data.subarray(i * matrix.width, (i + 1) * matrix.width)));
    }
    return rows;
  }

  /** Public contract: nested arrays in, nested array out (zero padding by default). */
  function convolve(image, kernel, options) {
    return toNested(correlate(toMatrix(image, "image"), toMatrix(kernel, "kernel"),
      options));
  }

  // ------------------------------------------------------------------ kernels

  function square(size, fill) {
    const rows = [];
    for (let i = 0; i < size; i++) {
      rows.push(new Array(size).fill(fill));
    }
    return rows;
  }

  /** A 3x3 kernel in the middle of a size x size grid of zeros. */
  function centred(rows3, size) {
    const rows = square(size, 0);
    const offset = (size - 3) / 2;
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        rows[i + offset][j + offset] = rows3[i][j];
      }
    }
    return rows;
  }

  const BINOMIAL = { 3: [1, 2, 1], 5: [1, 4, 6, 4, 1] };

  /** Gabor kernel as utils.kernels.gabor (OpenCV's convention), with the parameters of
   * utils.kernels.reference_bank: sigma = max(k/3, 0.8), lambda = max(k, 3), gamma = 1. */
  function gabor(size, degrees) {
    const theta = degrees * Math.PI / 180;
    const sigma = Math.max(size / 3, 0.8);
    const lambda = Math.max(size, 3);
    const half = (size - 1) / 2;
    const rows = square(size, 0);
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const y = half - i;
        const x = half - j;
        const xr = x * Math.cos(theta) + y * Math.sin(theta);
        const yr = -x * Math.sin(theta) + y * Math.cos(theta);
        const envelope = Math.exp(-0.5 * (xr * xr + yr * yr) / (sigma * sigma));
        rows[i][j] = envelope * Math.cos(2 * Math.PI * xr / lambda);
      }
    }
    return rows;
  }

  // The same kernels as utils.kernels (tests/test_explorer.py compares them).
  const SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]];
  const SOBEL_Y = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]];
  const PRESETS = {
    identity: { label: "identity", make: (k) => centred([[0, 0, 0], [0, 1, 0], [0, 0, 0]], k) },
    box: { label: "box blur", make: (k) => square(k, 1 / (k * k)) },
    gaussian: {
      label: "Gaussian (binomial)",
      make: (k) => {
        const b = BINOMIAL[k];
        const total = b.reduce((a, c) => a + c, 0);
        return b.map((r) => b.map((c) => (r * c) / (total * total)));
      },
    },
    sharpen: { label: "sharpen", make: (k) => centred([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], k) },
    sobel_x: { label: "Sobel x (vertical edges)", make: (k) => centred(SOBEL_X, k) },
    sobel_y: { label: "Sobel y (horizontal edges)", make: (k) => centred(SOBEL_Y, k) },
    prewitt_x: {
      label: "Prewitt x", make: (k) => centred([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], k),
    },
    prewitt_y: {
      label: "Prewitt y", make: (k) => centred([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], k),
    },
    laplacian4: {
      label: "Laplacian (4 neighbours)", make: (k) => centred([[0, 1, 0], [1, -4, 1], [0, 1, 0]], k),
    },
    laplacian8: {
      label: "Laplacian (8 neighbours)",
      make: (k) => centred([[1, 1, 1], [1, -8, 1], [1, 1, 1]], k),
    },
    gabor: { label: "Gabor", make: (k, angle) => gabor(k, angle) },
  };

  // ------------------------------------------------------------------ colours

  // Matplotlib's RdBu_r (blue negative, white zero, red positive) and viridis, as the
  // chapters draw signed and non-negative maps.
  const RDBU_R = [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222],
    [209, 229, 240], [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77],
    [178, 24, 43], [103, 0, 31]];
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142],
    [38, 130, 142], [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44],
    [253, 231, 37]];

  function colourAt(stops, t) {
    t = Math.min(1, Math.max(0, t));
    const position = t * (stops.length - 1);
    const low = Math.floor(position);
    const high = Math.min(stops.length - 1, low + 1);
    const f = position - low;
    return [0, 1, 2].map((c) => Math.round(stops[low][c] + f * (stops[high][c] - stops[low][c])));
  }

  function colourTable(stops) {
    const table = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      const rgb = colourAt(stops, i / 255);
      table.set(rgb, 3 * i);
    }
    return table;
  }

  const SIGNED = colourTable(RDBU_R);
  const SEQUENTIAL = colourTable(VIRIDIS);

  /** Paint a matrix into a canvas (one canvas pixel per value). `range` is [low, high]. */
  function paint(canvas, matrix, table, range) {
    canvas.width = matrix.width;
    canvas.height = matrix.height;
    const context = canvas.getContext("2d");
    const pixels = context.createImageData(matrix.width, matrix.height);
    const span = range[1] - range[0] || 1;
    const values = matrix.data;
    const out = pixels.data;
    for (let i = 0; i < values.length; i++) {
      const index = Math.round(((values[i] - range[0]) / span) * 255);
      const t = 3 * Math.min(255, Math.max(0, index));
      out[4 * i] = table[t];
      out[4 * i + 1] = table[t + 1];
      out[4 * i + 2] = table[t + 2];
      out[4 * i + 3] = 255;
    }
    context.putImageData(pixels, 0, 0);
  }

  const GREYS = (function () {
    const table = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      table.set([i, i, i], 3 * i);
    }
    return table;
  })();

  function extent(matrix) {
    let low = Infinity;
    let high = -Infinity;
    for (let i = 0; i < matrix.data.length; i++) {
      const v = matrix.data[i];
      if (v < low) low = v;
      if (v > high) high = v;
    }
    return [low, high];
  }

  /** Tidy number for labels: up to 3 significant decimals, no "-0". */
  function format(value) {
    const rounded = Math.abs(value) < 5e-4 ? 0 : value;
    return Number(rounded.toFixed(3)).toString().replace("-", "\u2212");
  }

  // ------------------------------------------------------------------ images

  /** The synthetic image of chapter 2: a bright 20 x 28 rectangle on a 40 x 56 black
   * background (rows 10-29, columns 14-41). */
  function rectangleImage() {
    const height = 40;
    const width = 56;
    const grey = new Float64Array(height * width);
    for (let i = 10; i < 30; i++) {
      for (let j = 14; j < 42; j++) {
        grey[i * width + j] = 1;
      }
    }
    return { height: height, width: width, channels: { grey: grey, red: grey, green: grey, blue: grey } };
  }

  const MAX_SIDE = 512;
  // The padded input's longer side takes this many CSS pixels; the other panels use the
  // same pixels per value.
  const PANEL_PIXELS = 256;

  /** RGB pixels of a decoded image -> grey (ITU-R 601 weights, as chapter 2) and the
   * three channels, all in [0, 1]. Images larger than MAX_SIDE are scaled down. */
  function imageFromElement(element) {
    const scale = Math.min(1, MAX_SIDE / Math.max(element.naturalWidth || element.width,
      element.naturalHeight || element.height));
    const width = Math.max(1, Math.round((element.naturalWidth || element.width) * scale));
    const height = Math.max(1, Math.round((element.naturalHeight || element.height) * scale));
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    context.drawImage(element, 0, 0, width, height);
    const rgba = context.getImageData(0, 0, width, height).data;
    const n = width * height;
    const red = new Float64Array(n);
    const green = new Float64Array(n);
    const blue = new Float64Array(n);
    const grey = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      red[i] = rgba[4 * i] / 255;
      green[i] = rgba[4 * i + 1] / 255;
      blue[i] = rgba[4 * i + 2] / 255;
      grey[i] = 0.299 * red[i] + 0.587 * green[i] + 0.114 * blue[i];
    }
    return { height: height, width: width, channels: { grey: grey, red: red, green: green, blue: blue } };
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const element = new Image();
      element.onload = () => resolve(imageFromElement(element));
      element.onerror = () => reject(new Error("could not load " + url));
      element.src = url;
    });
  }

  /** A sample image embedded by samples.js (scripts/make_explorer_assets.py): raw
   * uint8 pixels in base64, so no image file is read and the page works from file://
   * (where reading a canvas drawn from a file throws "tainted by cross-origin data"). */
  function sampleImage(name) {
    const samples = window.courseExplorerSamples || {};
    const sample = samples[name];
    if (!sample) {
      throw new Error("the sample image '" + name + "' is missing (samples.js)");
    }
    const bytes = atob(sample.pixels);
    const n = sample.height * sample.width;
    if (bytes.length !== n * sample.channels) {
      throw new Error("the sample image '" + name + "' has " + bytes.length +
        " bytes, expected " + n * sample.channels);
    }
    const red = new Float64Array(n);
    const green = new Float64Array(n);
    const blue = new Float64Array(n);
    const grey = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (sample.channels === 1) {
        grey[i] = bytes.charCodeAt(i) / 255;
        red[i] = green[i] = blue[i] = grey[i];
      } else {
        red[i] = bytes.charCodeAt(3 * i) / 255;
        green[i] = bytes.charCodeAt(3 * i + 1) / 255;
        blue[i] = bytes.charCodeAt(3 * i + 2) / 255;
        grey[i] = 0.299 * red[i] + 0.587 * green[i] + 0.114 * blue[i];
      }
    }
    return { height: sample.height, width: sample.width,
      channels: { grey: grey, red: red, green: green, blue: blue } };
  }

  // ------------------------------------------------------------------ widget

  let counter = 0;

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => {
      if (key === "text") {
        node.textContent = value;
      } else {
        node.setAttribute(key, value);
      }
    });
    (children || []).forEach((child) => node.appendChild(child));
    return node;
  }

  function labelled(labelText, control) {
    const id = control.id;
    return element("div", { class: "cx-field" }, [
      element("label", { for: id, text: labelText }), control]);
  }

  function select(id, options, value) {
    const node = element("select", { id: id });
    options.forEach(([optionValue, text]) => {
      const option = element("option", { value: optionValue, text: text });
      if (String(optionValue) === String(value)) option.selected = true;
      node.appendChild(option);
    });
    return node;
  }

  function numberInput(id, min, max, value) {
    return element("input", { id: id, type: "number", min: String(min), max: String(max),
      step: "1", value: String(value), inputmode: "numeric" });
  }

  class Explorer {
    constructor(root) {
      counter += 1;
      this.root = root;
      this.prefix = "cx" + counter + "-";
      this.state = {
        source: "rectangle", channel: "grey", size: 3, preset: "sobel_x", angle: 0,
        stride: 1, padding: 1, paddingMode: "zeros", dilation: 1, selected: [0, 0],
      };
      this.images = { rectangle: rectangleImage() };
      this.kernel = PRESETS.sobel_x.make(3, 0);
      this.build();
      this.setSource("rectangle");
    }

    id(name) {
      return this.prefix + name;
    }

    build() {
      const s = this.state;
      const root = this.root;
      root.classList.add("cx-root");
      root.textContent = "";
      this.controls = {
        source: select(this.id("source"), [["rectangle", "synthetic rectangle (40 \u00d7 56)"],
          ["digit", "MNIST digit (28 \u00d7 28)"], ["cat", "cat photograph (128 \u00d7 128)"],
          ["upload", "your image"]], s.source),
        channel: select(this.id("channel"), [["grey", "greyscale"], ["red", "red channel"],
          ["green", "green channel"], ["blue", "blue channel"]], s.channel),
        file: element("input", { id: this.id("file"), type: "file", accept: "image/*" }),
        size: select(this.id("size"), [[3, "3 \u00d7 3"], [5, "5 \u00d7 5"]], s.size),
        preset: select(this.id("preset"), Object.entries(PRESETS).map(([k, p]) => [k, p.label])
          .concat([["custom", "custom (edit the grid)"]]), s.preset),
        angle: element("input", { id: this.id("angle"), type: "range", min: "0", max: "165",
          step: "15", value: String(s.angle) }),
        stride: numberInput(this.id("stride"), 1, 3, s.stride),
        padding: numberInput(this.id("padding"), 0, 3, s.padding),
        paddingMode: select(this.id("padding-mode"), [["zeros", "zeros"], ["reflect", "reflect"]],
          s.paddingMode),
        dilation: numberInput(this.id("dilation"), 1, 3, s.dilation),
      };
      const c = this.controls;
      this.angleValue = element("output", { for: c.angle.id, text: "0\u00b0" });
      this.angleField = element("div", { class: "cx-field" }, [
        element("label", { for: c.angle.id, text: "Gabor angle" }), c.angle, this.angleValue]);
      this.grid = element("div", { class: "cx-kernel", role: "group",
        "aria-label": "kernel weights" });
      const imagePanel = element("fieldset", { class: "cx-panel" }, [
        element("legend", { text: "Input" }),
        labelled("Image", c.source), labelled("Colour", c.channel),
        labelled("Upload an image (or drop one on the input)", c.file)]);
      const kernelPanel = element("fieldset", { class: "cx-panel" }, [
        element("legend", { text: "Kernel" }),
        labelled("Preset", c.preset), labelled("Size", c.size), this.angleField, this.grid]);
      const windowPanel = element("fieldset", { class: "cx-panel" }, [
        element("legend", { text: "Sliding window" }),
        labelled("Stride", c.stride), labelled("Padding", c.padding),
        labelled("Padding values", c.paddingMode), labelled("Dilation", c.dilation)]);
      this.inputCanvas = element("canvas", { class: "cx-canvas", role: "img" });
      this.overlay = element("canvas", { class: "cx-overlay", "aria-hidden": "true" });
      this.inputBox = element("div", { class: "cx-stack" }, [this.inputCanvas, this.overlay]);
      this.outputCanvas = element("canvas", { class: "cx-canvas cx-focus", tabindex: "0",
        role: "img" });
      this.outputOverlay = element("canvas", { class: "cx-overlay", "aria-hidden": "true" });
      this.outputBox = element("div", { class: "cx-stack" }, [this.outputCanvas,
        this.outputOverlay]);
      this.colourbar = element("div", { class: "cx-colourbar", "aria-hidden": "true" });
      this.magnitudeCanvas = element("canvas", { class: "cx-canvas", role: "img" });
      this.magnitudeBar = element("div", { class: "cx-colourbar", "aria-hidden": "true" });
      this.inputCaption = element("figcaption", {});
      this.outputCaption = element("figcaption", {});
      this.magnitudeCaption = element("figcaption", {});
      this.magnitudeFigure = element("figure", { class: "cx-figure" }, [
        element("div", { class: "cx-stack" }, [this.magnitudeCanvas]), this.magnitudeBar,
        this.magnitudeCaption]);
      this.sizeText = element("p", { class: "cx-formula" });
      this.details = element("div", { class: "cx-details", "aria-live": "polite" });
      this.message = element("p", { class: "cx-message", role: "status" });
      root.appendChild(element("div", { class: "cx-controls" }, [imagePanel, kernelPanel,
        windowPanel]));
      root.appendChild(this.message);
      root.appendChild(this.sizeText);
      root.appendChild(element("div", { class: "cx-figures" }, [
        element("figure", { class: "cx-figure" }, [this.inputBox, this.inputCaption]),
        element("figure", { class: "cx-figure" }, [this.outputBox, this.colourbar,
          this.outputCaption]),
        this.magnitudeFigure]));
      root.appendChild(this.details);
      this.connect();
      this.buildGrid();
    }

    connect() {
      const c = this.controls;
      c.source.addEventListener("change", () => {
        if (c.source.value === "upload" && !this.images.upload) {
          c.file.click();
          return;
        }
        this.setSource(c.source.value);
      });
      c.file.addEventListener("change", () => {
        if (c.file.files && c.file.files[0]) this.loadFile(c.file.files[0]);
      });
      c.channel.addEventListener("change", () => {
        this.state.channel = c.channel.value;
        this.update();
      });
      c.size.addEventListener("change", () => {
        this.state.size = Number(c.size.value);
        if (this.state.preset === "custom") this.state.preset = "identity";
        this.applyPreset();
      });
      c.preset.addEventListener("change", () => {
        this.state.preset = c.preset.value;
        this.applyPreset();
      });
      c.angle.addEventListener("input", () => {
        this.state.angle = Number(c.angle.value);
        this.applyPreset();
      });
      [["stride", 1, 3], ["padding", 0, 3], ["dilation", 1, 3]].forEach(([name, min, max]) => {
        c[name].addEventListener("change", () => {
          const value = Math.round(Number(c[name].value));
          const clamped = Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : min;
          c[name].value = String(clamped);
          this.state[name] = clamped;
          this.update();
        });
      });
      c.paddingMode.addEventListener("change", () => {
        this.state.paddingMode = c.paddingMode.value;
        this.update();
      });
      const drop = this.inputBox;
      drop.addEventListener("dragover", (event) => {
        event.preventDefault();
        drop.classList.add("cx-dragging");
      });
      drop.addEventListener("dragleave", () => drop.classList.remove("cx-dragging"));
      drop.addEventListener("drop", (event) => {
        event.preventDefault();
        drop.classList.remove("cx-dragging");
        const file = event.dataTransfer && event.dataTransfer.files[0];
        if (file) this.loadFile(file);
      });
      const out = this.outputCanvas;
      // pointer events: mouse hover, a click or a tap on touch screens
      const pick = (event) => {
        const box = out.getBoundingClientRect();
        const result = this.result;
        if (!result) return;
        const j = Math.floor(((event.clientX - box.left) / box.width) * result.width);
        const i = Math.floor(((event.clientY - box.top) / box.height) * result.height);
        this.select(i, j);
      };
      out.addEventListener("pointermove", pick);
      out.addEventListener("pointerdown", (event) => {
        pick(event);
        out.focus();
      });
      out.addEventListener("keydown", (event) => {
        const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1],
          ArrowRight: [0, 1] };
        const move = moves[event.key];
        if (!move || !this.result) return;
        event.preventDefault();
        const [i, j] = this.state.selected;
        this.select(i + move[0], j + move[1]);
      });
    }

    buildGrid() {
      const k = this.state.size;
      this.grid.textContent = "";
      this.grid.style.gridTemplateColumns = "repeat(" + k + ", 4.2em)";
      this.cells = [];
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const input = element("input", { type: "number", step: "0.1",
            id: this.id("w" + i + "-" + j),
            "aria-label": "kernel weight, row " + (i + 1) + ", column " + (j + 1) });
          input.value = format(this.kernel[i][j]).replace("\u2212", "-");
          input.addEventListener("change", () => {
            const value = Number(input.value);
            this.kernel[i][j] = Number.isFinite(value) ? value : 0;
            this.state.preset = "custom";
            this.controls.preset.value = "custom";
            this.update();
          });
          this.cells.push(input);
          this.grid.appendChild(input);
        }
      }
    }

    applyPreset() {
      const s = this.state;
      const preset = PRESETS[s.preset];
      if (preset) {
        this.kernel = preset.make(s.size, s.angle);
      } else if (this.kernel.length !== s.size) {
        this.kernel = PRESETS.identity.make(s.size, 0);
      }
      this.controls.size.value = String(s.size);
      this.controls.preset.value = s.preset;
      this.buildGrid();
      this.update();
    }

    async setSource(name) {
      try {
        if (!this.images[name]) {
          this.images[name] = sampleImage(name);
        }
        this.state.source = name;
        this.controls.source.value = name;
        this.update();
      } catch (error) {
        this.message.textContent = error.message;
      }
    }

    loadFile(file) {
      if (!file.type.startsWith("image/")) {
        this.message.textContent = "Please choose an image file (PNG, JPEG, …); got " +
          (file.type || "an unknown type") + ".";
        return;
      }
      // a data: URL, not a blob: URL, so that the canvas stays readable from file://
      const reader = new FileReader();
      reader.onload = () => loadImage(reader.result).then((image) => {
        this.images.upload = image;
        this.uploadName = file.name;
        this.setSource("upload");
      }).catch(() => {
        this.message.textContent = "Could not read " + file.name + " as an image.";
      });
      reader.onerror = () => {
        this.message.textContent = "Could not read " + file.name + ".";
      };
      reader.readAsDataURL(file);
    }

    /** Replace the input with a plain nested array (used by tests and for experiments). */
    loadArray(rows) {
      const matrix = toMatrix(rows, "image");
      const grey = matrix.data;
      this.images.upload = { height: matrix.height, width: matrix.width,
        channels: { grey: grey, red: grey, green: grey, blue: grey } };
      this.uploadName = "array";
      this.state.source = "upload";
      this.controls.source.value = "upload";
      return this.update();
    }

    setKernel(rows) {
      const matrix = toMatrix(rows, "kernel");
      if (matrix.height !== matrix.width || (matrix.height !== 3 && matrix.height !== 5)) {
        throw new RangeError("the explorer's kernel must be 3 x 3 or 5 x 5");
      }
      this.kernel = rows.map((row) => row.slice());
      this.state.size = matrix.height;
      this.state.preset = "custom";
      this.controls.size.value = String(matrix.height);
      this.controls.preset.value = "custom";
      this.buildGrid();
      return this.update();
    }

    /** Recompute and redraw everything; returns the time it took in milliseconds. */
    update() {
      const start = performance.now();
      const s = this.state;
      const image = this.images[s.source];
      if (!image) return 0;
      this.angleField.hidden = s.preset !== "gabor";
      this.angleValue.textContent = s.angle + "\u00b0";
      const channel = { data: image.channels[s.channel], height: image.height, width: image.width };
      this.channelImage = channel;
      const options = { stride: s.stride, padding: s.padding, dilation: s.dilation,
        paddingMode: s.paddingMode };
      this.message.textContent = "";
      let result;
      try {
        result = correlate(channel, toMatrix(this.kernel, "kernel"), options);
      } catch (error) {
        this.message.textContent = "Cannot convolve: " + error.message + ".";
        this.result = null;
        return performance.now() - start;
      }
      this.result = result;
      // one scale for every panel: one input pixel and one output value take the same
      // room on screen, so stride shrinks the map and padding shows as a rim
      const paddedSide = Math.max(channel.height, channel.width) + 2 * s.padding;
      this.scale = PANEL_PIXELS / paddedSide;
      this.drawInput(channel);
      this.drawOutput(result);
      this.drawMagnitude(channel, options);
      this.describeSize(channel);
      const [i, j] = s.selected;
      this.select(Math.min(i, result.height - 1), Math.min(j, result.width - 1));
      return performance.now() - start;
    }

    drawInput(channel) {
      const s = this.state;
      const padded = s.padding > 0 ? pad(channel, s.padding, s.paddingMode) : channel;
      this.padded = padded;
      paint(this.inputCanvas, padded, GREYS, [0, 1]);
      this.sizeCanvas(this.inputCanvas);
      const name = s.source === "upload" ? (this.uploadName || "your image") :
        this.controls.source.selectedOptions[0].textContent;
      const channelName = this.controls.channel.selectedOptions[0].textContent;
      this.inputCaption.textContent = "Input: " + name + ", " + channelName + ", " +
        channel.height + " \u00d7 " + channel.width + " pixels" +
        (s.padding ? " plus " + s.padding + " of " + s.paddingMode + " padding (outside the dashed line)" : "");
      this.inputCanvas.setAttribute("aria-label", this.inputCaption.textContent);
    }

    drawOutput(result) {
      const [low, high] = extent(result);
      const limit = Math.max(Math.abs(low), Math.abs(high)) || 1;
      paint(this.outputCanvas, result, SIGNED, [-limit, limit]);
      this.sizeCanvas(this.outputCanvas);
      this.drawColourbar(this.colourbar, RDBU_R, -limit, limit);
      this.outputCaption.textContent = "Feature map: " + result.height + " \u00d7 " +
        result.width + ", values from " + format(low) + " to " + format(high) +
        " (red positive, blue negative, white 0), drawn at the input's scale. Hover or " +
        "tap it, or focus it and use the arrow keys.";
      this.outputCanvas.setAttribute("aria-label", "Feature map, " + result.height + " by " +
        result.width + ". Use the arrow keys to step through its pixels.");
    }

    drawMagnitude(channel, options) {
      const s = this.state;
      const pair = { sobel_x: true, sobel_y: true }[s.preset];
      this.magnitudeFigure.hidden = !pair;
      if (!pair) return;
      const gx = correlate(channel, toMatrix(centred(SOBEL_X, s.size), "kernel"), options);
      const gy = correlate(channel, toMatrix(centred(SOBEL_Y, s.size), "kernel"), options);
      const magnitude = new Float64Array(gx.data.length);
      for (let i = 0; i < magnitude.length; i++) {
        magnitude[i] = Math.hypot(gx.data[i], gy.data[i]);
      }
      const matrix = { data: magnitude, height: gx.height, width: gx.width };
      const high = extent(matrix)[1] || 1;
      paint(this.magnitudeCanvas, matrix, SEQUENTIAL, [0, high]);
      this.sizeCanvas(this.magnitudeCanvas);
      this.drawColourbar(this.magnitudeBar, VIRIDIS, 0, high);
      this.magnitudeCaption.textContent = "Gradient magnitude \u221a(gx\u00b2 + gy\u00b2) " +
        "of the Sobel pair, from 0 to " + format(high) + ".";
      this.magnitudeCanvas.setAttribute("aria-label", this.magnitudeCaption.textContent);
    }

    /** Draw the canvas at this.scale CSS pixels per value (see update). */
    sizeCanvas(canvas) {
      canvas.style.width = (canvas.width * this.scale).toFixed(2) + "px";
    }

    drawColourbar(container, stops, low, high) {
      container.textContent = "";
      const bar = element("canvas", { class: "cx-bar" });
      bar.width = 128;
      bar.height = 1;
      const context = bar.getContext("2d");
      for (let x = 0; x < 128; x++) {
        const rgb = colourAt(stops, x / 127);
        context.fillStyle = "rgb(" + rgb.join(",") + ")";
        context.fillRect(x, 0, 1, 1);
      }
      const labels = element("div", { class: "cx-bar-labels" }, [
        element("span", { text: format(low) }),
        element("span", { text: format((low + high) / 2) }),
        element("span", { text: format(high) })]);
      container.appendChild(bar);
      container.appendChild(labels);
    }

    describeSize(channel) {
      const s = this.state;
      const k = s.size;
      const parts = [["height", channel.height], ["width", channel.width]].map(([name, n]) => {
        const out = outputSize(n, k, s.stride, s.padding, s.dilation);
        return name + ": \u230a(" + n + " + 2\u00b7" + s.padding + " \u2212 " + s.dilation +
          "\u00b7(" + k + " \u2212 1) \u2212 1) / " + s.stride + "\u230b + 1 = " + out;
      });
      this.sizeText.textContent = "Output size \u230a(n + 2p \u2212 d(k \u2212 1) \u2212 1) / s\u230b + 1, " +
        parts.join("; ");
    }

    /** Select output pixel (i, j): outline its window on the input, list the products. */
    select(i, j) {
      const result = this.result;
      if (!result) return;
      i = Math.min(result.height - 1, Math.max(0, i));
      j = Math.min(result.width - 1, Math.max(0, j));
      this.state.selected = [i, j];
      const s = this.state;
      const k = s.size;
      const padded = this.padded;
      const rows = [];
      let sum = 0;
      for (let u = 0; u < k; u++) {
        const row = [];
        for (let v = 0; v < k; v++) {
          const x = padded.data[(i * s.stride + u * s.dilation) * padded.width +
            j * s.stride + v * s.dilation];
          const w = this.kernel[u][v];
          sum += w * x;
          row.push([w, x]);
        }
        rows.push(row);
      }
      this.drawWindow(i, j);
      const table = element("table", { class: "cx-products" });
      table.appendChild(element("caption", { text: "Output (" + i + ", " + j + ") = sum of " +
        "weight \u00d7 input over the window" }));
      const body = element("tbody");
      rows.forEach((row) => {
        body.appendChild(element("tr", {}, row.map(([w, x]) => element("td", {
          text: format(w) + " \u00d7 " + format(x) + " = " + format(w * x) }))));
      });
      table.appendChild(body);
      const total = element("p", { class: "cx-sum", text: "Sum = " + format(sum) +
        " (the feature map holds " + format(result.data[i * result.width + j]) + ")" });
      this.details.textContent = "";
      this.details.appendChild(table);
      this.details.appendChild(total);
    }

    drawWindow(i, j) {
      const s = this.state;
      const padded = this.padded;
      const overlay = this.overlay;
      const box = this.inputCanvas.getBoundingClientRect();
      const ratio = window.devicePixelRatio || 1;
      overlay.width = Math.max(1, Math.round(box.width * ratio));
      overlay.height = Math.max(1, Math.round(box.height * ratio));
      const context = overlay.getContext("2d");
      const sx = overlay.width / padded.width;
      const sy = overlay.height / padded.height;
      context.clearRect(0, 0, overlay.width, overlay.height);
      if (s.padding > 0) {
        context.setLineDash([4 * ratio, 3 * ratio]);
        context.strokeStyle = "#f5a623";
        context.lineWidth = ratio;
        context.strokeRect(s.padding * sx, s.padding * sy, this.channelImage.width * sx,
          this.channelImage.height * sy);
        context.setLineDash([]);
      }
      context.fillStyle = "rgba(230, 57, 70, 0.45)";
      context.strokeStyle = "#e63946";
      context.lineWidth = Math.max(1, ratio);
      for (let u = 0; u < s.size; u++) {
        for (let v = 0; v < s.size; v++) {
          const y = i * s.stride + u * s.dilation;
          const x = j * s.stride + v * s.dilation;
          context.fillRect(x * sx, y * sy, sx, sy);
          context.strokeRect(x * sx, y * sy, sx, sy);
        }
      }
      const out = this.outputOverlay;
      const outBox = this.outputCanvas.getBoundingClientRect();
      out.width = Math.max(1, Math.round(outBox.width * ratio));
      out.height = Math.max(1, Math.round(outBox.height * ratio));
      const outContext = out.getContext("2d");
      const ox = out.width / this.result.width;
      const oy = out.height / this.result.height;
      outContext.clearRect(0, 0, out.width, out.height);
      outContext.strokeStyle = "#111111";
      outContext.lineWidth = Math.max(2, 2 * ratio);
      outContext.strokeRect(j * ox, i * oy, ox, oy);
    }
  }

  function mountAll() {
    const explorers = [];
    document.querySelectorAll("[data-course-explorer]").forEach((root) => {
      if (!root.courseExplorer) {
        root.courseExplorer = new Explorer(root);
      }
      explorers.push(root.courseExplorer);
    });
    window.courseExplorer.explorers = explorers;
  }

  window.courseExplorer = {
    convolve: convolve,
    outputSize: outputSize,
    presets: Object.keys(PRESETS),
    kernel: (name, size, angle) => {
      if (!PRESETS[name]) throw new RangeError("unknown preset " + name);
      return PRESETS[name].make(size || 3, angle || 0);
    },
    explorers: [],
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})();
