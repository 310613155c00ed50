// svg.h: the report's charts as plain SVG 1.1 files, no plotting library: lines with
// error bars, a scatter with its Pareto front, grouped bars with intervals. A browser
// or a forge (GitHub) shows the file as it is. Each chart is written through OutFile
// (a temp name, then a rename), so a failure never leaves half a picture.
//
// Layout (pixels): title on top, the y axis's labels left, the legend right of the
// plot so it never covers data, tick labels and the x label below. A point whose x
// or y is NaN (or infinite) is skipped: not drawn, not counted in the axis ranges.
#pragma once
#include "utils.h"

typedef struct {
    const char* label;      // legend text
    int n;                  // points
    const double* x;        // (n)
    const double* y;        // (n)
    const double* lo;       // (n) lower end of an error bar, or NULL for none
    const double* hi;       // (n) upper end, or NULL
} SvgSeries;

typedef struct {
    const char* title;
    const char* xlabel;
    const char* ylabel;
    int log_x;              // x axis logarithmic (every x > 0, else die with a clear message)
} SvgAxes;

// ----------------------------------------------------------------------------
// the arithmetic: ticks and the Pareto front

#define SVG_MAX_TICKS 11

// m x 10^p as the double nearest the decimal: 3 / 10 is 0.3, 3 * 0.1 is 0.30000000000000004 (above
// a range that starts at 0.3); + 0.0 turns -0 into 0
static double tick_value(double m, int p) { return (p < 0 ? m / pow(10, -p) : m * pow(10, p)) + 0.0; }

#define TICK_EPS 1e-9  // 0.7 / 0.1 = 6.999999999999999 and 0.3 / 0.1 = 2.9999999999999996 are ticks, not a step short

// linear ticks: the smallest step of 1, 2 or 5 x 10^k that needs at most 8 ticks; the step before
// it needed 9 or more, which leaves this one at least 4. ticks (8). Returns the count.
static int linear_ticks(double lo, double hi, double* ticks) {
    static const double mult[3] = {1, 2, 5};
    int p0 = (int)floor(log10(hi - lo)) - 1;  // 10 to 100 steps of 10^p0: too many, so grow
    for (int k = 0;; k++) {
        double m = mult[k % 3];
        int p = p0 + k / 3;
        double step = tick_value(m, p), first = floor(lo / step + TICK_EPS), last = ceil(hi / step - TICK_EPS);
        if (last - first + 1 > 8) continue;
        int n = 0;
        for (double i = first; i <= last; i++) ticks[n++] = tick_value(i * m, p);
        return n;
    }
}

// "nice" ticks covering [lo, hi] (the first <= lo, the last >= hi), 4 to 11 of them. Linear:
// linear_ticks. Log over a decade or more: powers of ten (every k-th when there are many decades),
// with 2x and 5x between when fewer than 3 decades. Log under a decade: every 1 to 9 x 10^k (70, 80,
// 90, 100, 200, ...), or where that gives fewer than 4 (a range under about 2x), the linear ticks,
// which are all > 0 there. ticks (cap): cap must be at least SVG_MAX_TICKS. Returns the count.
static int axis_ticks(double lo, double hi, int log_axis, double* ticks, int cap) {
    if (cap < SVG_MAX_TICKS) die("axis_ticks: room for %d ticks, it may need %d", cap, SVG_MAX_TICKS);
    if (!(lo <= hi) || !isfinite(hi - lo)) die("axis_ticks: no range in [%g, %g]", lo, hi);
    if (log_axis && lo <= 0) die("axis_ticks: a log axis needs values > 0, got %g", lo);
    if (hi - lo <= 1e-9 * fmax(fabs(lo), fabs(hi))) {  // one value (give or take rounding): a range around it
        double w = lo != 0.0 ? 0.1 * fabs(lo) : 1.0;
        if (log_axis) { lo /= 2; hi *= 2; }
        else { lo -= w; hi += w; }
    }
    if (!log_axis) return linear_ticks(lo, hi, ticks);
    int e0 = (int)floor(log10(lo) + TICK_EPS), e1 = (int)ceil(log10(hi) - TICK_EPS);
    if (e1 == e0) e1++;
    int n = 0;
    if (hi < 10 * lo) {  // e1 - e0 is 1 or 2: 1 to 9 x 10^e0, the same x 10^(e0+1), 10^e1
        double every[19];
        int n_every = 0, first = 0, last = 0;
        for (int e = e0; e < e1; e++) {
            for (int m = 1; m <= 9; m++) every[n_every++] = tick_value(m, e);
        }
        every[n_every++] = tick_value(1, e1);
        for (int i = 0; i < n_every; i++) {
            if (every[i] <= lo * (1 + TICK_EPS)) first = i;
        }
        for (last = n_every - 1; last > 0 && every[last - 1] >= hi * (1 - TICK_EPS); last--) {}
        if (last - first + 1 < 4) return linear_ticks(lo, hi, ticks);
        for (int i = first; i <= last; i++) ticks[n++] = every[i];
        return n;
    }
    int every = (e1 - e0 + 7) / 8;  // at most 9 powers
    for (int e = e0;; e += every) {
        ticks[n++] = pow(10, e);
        if (e >= e1) return n;
        if (e1 - e0 < 3) { ticks[n++] = 2 * pow(10, e); ticks[n++] = 5 * pow(10, e); }
    }
}

// the Pareto front of n points, lower x and higher y better: a point is on it unless another
// has x <= and y >= its own, one of them strictly (so equal points are both on it). A point with
// a NaN is on no front and beats none. x (n), y (n), on_front (n) gets 1 or 0. Returns the count.
static int pareto_front(const double* x, const double* y, int n, int* on_front) {
    int count = 0;
    for (int i = 0; i < n; i++) {
        int on = isfinite(x[i]) && isfinite(y[i]);
        for (int j = 0; j < n && on; j++) {
            on = !(x[j] <= x[i] && y[j] >= y[i] && (x[j] < x[i] || y[j] > y[i]));  // false for a NaN
        }
        on_front[i] = on;
        count += on;
    }
    return count;
}

// ----------------------------------------------------------------------------
// the drawing: a chart is its two axes, the plot's box in pixels and the file

#define SVG_W 640
#define SVG_H 400
#define SVG_LEGEND_CHARS 28  // a legend label longer than this is cut, "..." at its end
#define SVG_EM 0.65  // a character's width in em: generous for sans-serif (DejaVu Sans is wide), to lay out text

// Okabe-Ito, told apart with any colour vision; its yellow is left out (too pale on white)
static const char* svg_palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"};
#define SVG_COLOUR(i) svg_palette[(i) % (int)(sizeof(svg_palette) / sizeof(svg_palette[0]))]

typedef struct {
    double lo, hi;          // the data's extent, then the drawn range
    int log;
    int empty;              // no data: the chart says so (a study's report before its models are trained)
    int n_ticks;
    double ticks[SVG_MAX_TICKS];
} SvgAxis;

typedef struct {
    OutFile out;
    FILE* f;
    SvgAxis x, y;
    double left, right, top, bottom;  // the plot's box
} SvgChart;

static SvgAxis axis_empty(int log) { return (SvgAxis){.lo = INFINITY, .hi = -INFINITY, .log = log}; }

static void axis_add(SvgAxis* a, double v) {
    if (!isfinite(v)) return;
    a->lo = fmin(a->lo, v);
    a->hi = fmax(a->hi, v);
}

// the data's extent -> the drawn range and its ticks: 4% room beyond the data, then 0 brought in
// when asked (bars start there), then ticks covering that. A linear axis runs to its outer ticks; a
// log one keeps its range and the ticks inside (a decade's rounding could waste half the width)
static void axis_settle(SvgAxis* a, int with_zero) {
    double lo = a->lo, hi = a->hi;
    a->empty = lo > hi;
    if (a->empty) { lo = 1; hi = 10; }
    if (a->log) { lo = log10(lo); hi = log10(hi); }
    double pad = lo < hi ? 0.04 * (hi - lo) : 0.0;  // axis_ticks widens a single value
    lo -= pad;
    hi += pad;
    if (a->log) { lo = pow(10, lo); hi = pow(10, hi); }
    if (with_zero) { lo = fmin(lo, 0.0); hi = fmax(hi, 0.0); }
    a->n_ticks = axis_ticks(lo, hi, a->log, a->ticks, SVG_MAX_TICKS);
    if (a->log) {  // the ticks inside the range, when there are two to read it by
        double inside[SVG_MAX_TICKS];
        int n = 0;
        for (int i = 0; i < a->n_ticks; i++) {
            if (a->ticks[i] >= lo * (1 - 1e-9) && a->ticks[i] <= hi * (1 + 1e-9)) inside[n++] = a->ticks[i];
        }
        if (n >= 2) {
            a->lo = lo;
            a->hi = hi;
            a->n_ticks = n;
            memcpy(a->ticks, inside, (size_t)n * sizeof(double));
            return;
        }
    }
    a->lo = a->ticks[0];
    a->hi = a->ticks[a->n_ticks - 1];
}

static double axis_frac(const SvgAxis* a, double v) {
    return a->log ? log10(v / a->lo) / log10(a->hi / a->lo) : (v - a->lo) / (a->hi - a->lo);
}
static double chart_px(const SvgChart* c, double x) { return c->left + axis_frac(&c->x, x) * (c->right - c->left); }
static double chart_py(const SvgChart* c, double y) { return c->bottom - axis_frac(&c->y, y) * (c->bottom - c->top); }

static int text_chars(const char* s) { return s ? (int)strlen(s) : 0; }

// text as XML character data: the markup characters escaped, control bytes (not allowed in XML) as '?'
static void svg_escape(FILE* f, const char* s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '&') fputs("&amp;", f);
        else if (ch == '<') fputs("&lt;", f);
        else if (ch == '>') fputs("&gt;", f);
        else if (ch == '"') fputs("&quot;", f);
        else fputc(ch < 0x20 && ch != '\t' ? '?' : ch, f);
    }
}

// attrs: more attributes of the <text> element, or ""; a NULL s draws nothing
static void svg_text(FILE* f, double x, double y, const char* attrs, const char* s) {
    if (s == NULL) return;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" %s>", x, y, attrs);
    svg_escape(f, s);
    fputs("</text>\n", f);
}

// opens the file and draws what every chart has: background, title, grid, ticks and their labels,
// the frame, the axis labels. The axes are settled; an axis with no ticks (the bars' x) draws none.
// legend_chars: the longest legend label, which sets the room right of the plot.
static void chart_begin(SvgChart* c, const char* path, const SvgAxes* a, int legend_chars) {
    char label[32];
    int y_chars = 0;
    for (int i = 0; i < c->y.n_ticks; i++) y_chars = max_int(y_chars, snprintf(label, sizeof(label), "%g", c->y.ticks[i]));
    c->left = 34 + y_chars * SVG_EM * 11;
    c->right = SVG_W - 50 - min_int(legend_chars, SVG_LEGEND_CHARS) * SVG_EM * 12;  // key, gaps, text
    c->top = 40;
    c->bottom = SVG_H - 50;
    outfile_open(&c->out, path);
    FILE* f = c->f = c->out.f;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\" fill=\"#222\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", SVG_W, SVG_H, SVG_W, SVG_H, SVG_W, SVG_H);
    svg_text(f, SVG_W / 2.0, 24, "text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\"", a->title);
    // grid lines and outward tick marks, then the tick labels
    fprintf(f, "<g stroke=\"#e4e4e4\">\n");
    for (int i = 0; i < c->y.n_ticks; i++) fprintf(f, "<path d=\"M%.1f %.1fH%.1f\"/>\n", c->left, chart_py(c, c->y.ticks[i]), c->right);
    for (int i = 0; i < c->x.n_ticks; i++) fprintf(f, "<path d=\"M%.1f %.1fV%.1f\"/>\n", chart_px(c, c->x.ticks[i]), c->top, c->bottom);
    fprintf(f, "</g>\n<g stroke=\"#444\">\n");
    for (int i = 0; i < c->y.n_ticks; i++) fprintf(f, "<path d=\"M%.1f %.1fh-5\"/>\n", c->left, chart_py(c, c->y.ticks[i]));
    for (int i = 0; i < c->x.n_ticks; i++) fprintf(f, "<path d=\"M%.1f %.1fv5\"/>\n", chart_px(c, c->x.ticks[i]), c->bottom);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\"/>\n",
            c->left, c->top, c->right - c->left, c->bottom - c->top);
    fprintf(f, "</g>\n<g font-size=\"11\">\n");
    for (int i = 0; i < c->y.n_ticks; i++) {
        snprintf(label, sizeof(label), "%g", c->y.ticks[i]);
        svg_text(f, c->left - 8, chart_py(c, c->y.ticks[i]) + 4, "text-anchor=\"end\"", label);
    }
    for (int i = 0; i < c->x.n_ticks; i++) {
        snprintf(label, sizeof(label), "%g", c->x.ticks[i]);
        svg_text(f, chart_px(c, c->x.ticks[i]), c->bottom + 18, "text-anchor=\"middle\"", label);
    }
    fprintf(f, "</g>\n");
    if (c->y.empty) svg_text(f, (c->left + c->right) / 2, (c->top + c->bottom) / 2, "text-anchor=\"middle\" fill=\"#888\"", "nothing to draw yet");
    svg_text(f, (c->left + c->right) / 2, c->bottom + 40, "text-anchor=\"middle\"", a->xlabel);
    svg_text(f, -(c->top + c->bottom) / 2, 16, "text-anchor=\"middle\" transform=\"rotate(-90)\"", a->ylabel);  // (x, y) -> (y, -x)
}

typedef enum { KEY_LINE, KEY_BOX, KEY_HOLLOW } SvgKey;

// legend entry i, right of the plot: its swatch and its label
static void chart_key(const SvgChart* c, int i, const char* colour, SvgKey key, const char* label) {
    double x = c->right + 14, y = c->top + 10 + 20 * i;
    if (key == KEY_BOX) fprintf(c->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"12\" fill=\"%s\"/>\n", x, y - 6, colour);
    if (key == KEY_LINE) fprintf(c->f, "<path d=\"M%.1f %.1fh18\" stroke=\"%s\" stroke-width=\"2\"/>\n", x, y, colour);
    if (key != KEY_BOX) {
        fprintf(c->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                x + 9, y, key == KEY_HOLLOW ? "#fff" : colour, colour);
    }
    char cut[SVG_LEGEND_CHARS + 1];
    if (text_chars(label) > SVG_LEGEND_CHARS) {
        int k = SVG_LEGEND_CHARS - 3;
        while (k > 0 && ((unsigned char)label[k] & 0xC0) == 0x80) k--;  // not inside a UTF-8 character: XML must stay valid
        snprintf(cut, sizeof(cut), "%.*s...", k, label);
        label = cut;
    }
    svg_text(c->f, x + 24, y + 4, "", label);
}

static void chart_end(SvgChart* c) {
    fputs("</svg>\n", c->f);
    if (ferror(c->f)) die("cannot write '%s': %s", c->out.tmp, strerror(errno));
    outfile_commit(&c->out);
}

static int point_drawn(double x, double y) { return isfinite(x) && isfinite(y); }

static void check_log_x(const char* path, const SvgAxes* a, double x, const char* what) {
    if (a->log_x && x <= 0) die("chart '%s': the x axis is logarithmic but %s has x = %g, which is not > 0", path, what ? what : "a point", x);
}

// a vertical interval [lo, hi] at pixel x with 6-pixel caps; nothing when an end is NaN
static void chart_whisker(const SvgChart* c, double x, double lo, double hi) {
    if (!isfinite(lo) || !isfinite(hi)) return;
    double l = chart_py(c, lo), h = chart_py(c, hi);
    fprintf(c->f, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh6M%.1f %.1fh6\"/>\n", x, l, h, x - 3, l, x - 3, h);
}

// ----------------------------------------------------------------------------
// the charts

// lines with markers, one colour per series, a legend, optional error bars. s (n_series)
static void svg_line_chart(const char* path, const SvgAxes* a, const SvgSeries* s, int n_series) {
    SvgChart c = {.x = axis_empty(a->log_x), .y = axis_empty(0)};
    int legend_chars = 0;
    for (int k = 0; k < n_series; k++) {
        legend_chars = max_int(legend_chars, text_chars(s[k].label));
        for (int i = 0; i < s[k].n; i++) {
            if (!point_drawn(s[k].x[i], s[k].y[i])) continue;
            check_log_x(path, a, s[k].x[i], s[k].label);
            axis_add(&c.x, s[k].x[i]);
            axis_add(&c.y, s[k].y[i]);
            if (s[k].lo) axis_add(&c.y, s[k].lo[i]);
            if (s[k].hi) axis_add(&c.y, s[k].hi[i]);
        }
    }
    axis_settle(&c.x, 0);
    axis_settle(&c.y, 0);
    chart_begin(&c, path, a, legend_chars);
    // error bars at the same x side by side, not on top of each other: each series a few pixels apart, 12 at most in all
    int whiskers = 0;
    for (int k = 0; k < n_series; k++) whiskers |= s[k].lo || s[k].hi;
    double dodge_step = whiskers && n_series > 1 ? fmin(4.0, 12.0 / (n_series - 1)) : 0.0;
    for (int k = 0; k < n_series; k++) {
        const SvgSeries* e = &s[k];
        double dodge = (k - (n_series - 1) / 2.0) * dodge_step;
        fprintf(c.f, "<g stroke=\"%s\" fill=\"%s\" stroke-width=\"1.5\">\n<path fill=\"none\" stroke-width=\"2\" d=\"",
                SVG_COLOUR(k), SVG_COLOUR(k));
        for (int i = 0, pen_down = 0; i < e->n; i++) {  // a skipped point breaks the line
            int drawn = point_drawn(e->x[i], e->y[i]);
            if (drawn) fprintf(c.f, "%s%.1f %.1f", pen_down ? "L" : "M", chart_px(&c, e->x[i]) + dodge, chart_py(&c, e->y[i]));
            pen_down = drawn;
        }
        fprintf(c.f, "\"/>\n");
        for (int i = 0; i < e->n; i++) {
            if (!point_drawn(e->x[i], e->y[i])) continue;
            double px = chart_px(&c, e->x[i]) + dodge;
            if (e->lo || e->hi) chart_whisker(&c, px, e->lo ? e->lo[i] : e->y[i], e->hi ? e->hi[i] : e->y[i]);
            fprintf(c.f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"/>\n", px, chart_py(&c, e->y[i]));
        }
        fprintf(c.f, "</g>\n");
        chart_key(&c, k, SVG_COLOUR(k), KEY_LINE, e->label);
    }
    chart_end(&c);
}

typedef struct { double x0, y0, x1, y1; } SvgBox;

static double boxes_overlap(SvgBox a, SvgBox b) {
    return fmax(0.0, fmin(a.x1, b.x1) - fmax(a.x0, b.x0)) * fmax(0.0, fmin(a.y1, b.y1) - fmax(a.y0, b.y0));
}

// where a point's label goes: of eight places around it (right, left, the four corners, above,
// below) inside the plot, the first clear of what is taken (n_taken: markers, the front's line,
// the labels placed before), else the one that covers the least of it; right when none is inside
static SvgBox label_place(const SvgChart* c, double px, double py, const char* label, const SvgBox* taken, int n_taken) {
    double w = text_chars(label) * SVG_EM * 10 + 4, h = 11;  // 4 px to spare: capitals run wider than SVG_EM
    const double at[8][2] = {{px + 6, py - h / 2}, {px - 6 - w, py - h / 2}, {px + 4, py - 4 - h}, {px + 4, py + 4},
                             {px - 4 - w, py - 4 - h}, {px - 4 - w, py + 4}, {px - w / 2, py - 6 - h}, {px - w / 2, py + 6}};
    SvgBox best = {at[0][0], at[0][1], at[0][0] + w, at[0][1] + h};
    double best_covered = INFINITY;
    for (int k = 0; k < 8 && best_covered > 0.0; k++) {
        SvgBox b = {at[k][0], at[k][1], at[k][0] + w, at[k][1] + h};
        if (b.x0 < c->left || b.x1 > c->right || b.y0 < c->top || b.y1 > c->bottom) continue;
        double covered = 0.0;
        for (int j = 0; j < n_taken; j++) covered += boxes_overlap(b, taken[j]);
        if (covered < best_covered) { best = b; best_covered = covered; }
    }
    return best;
}

// points labelled by name (labels (n)); the Pareto front (pareto_front) drawn as a step line
// through its points, which are filled; the others hollow. Lower x = cheaper, higher y = better.
// x (n), y (n).
static void svg_scatter_pareto(const char* path, const SvgAxes* a, const char* const* labels, const double* x, const double* y, int n) {
    SvgChart c = {.x = axis_empty(a->log_x), .y = axis_empty(0)};
    for (int i = 0; i < n; i++) {
        if (!point_drawn(x[i], y[i])) continue;
        check_log_x(path, a, x[i], labels[i]);
        axis_add(&c.x, x[i]);
        axis_add(&c.y, y[i]);
    }
    axis_settle(&c.x, 0);
    axis_settle(&c.y, 0);
    int* on_front = (int*)mallocCheck((size_t)n * sizeof(int));  // (n)
    int* front = (int*)mallocCheck((size_t)n * sizeof(int));     // (n_front) its points by increasing x
    int n_front = 0;
    pareto_front(x, y, n, on_front);
    for (int i = 0; i < n; i++) {
        if (!on_front[i]) continue;
        int j = n_front++;
        for (; j > 0 && x[front[j - 1]] > x[i]; j--) front[j] = front[j - 1];
        front[j] = i;
    }
    SvgBox* taken = (SvgBox*)mallocCheck((size_t)4 * n * sizeof(SvgBox));  // (n_taken) where no label may go
    int n_taken = 0;
    chart_begin(&c, path, a, text_chars("other models"));
    const char* colour = SVG_COLOUR(0);
    // the best y at each cost: level until the next front point's x, then up to its y
    fprintf(c.f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"", colour);
    for (int k = 0; k < n_front; k++) {
        double px = chart_px(&c, x[front[k]]), py = chart_py(&c, y[front[k]]);
        if (k == 0) { fprintf(c.f, "M%.1f %.1f", px, py); continue; }
        double px0 = chart_px(&c, x[front[k - 1]]), py0 = chart_py(&c, y[front[k - 1]]);
        fprintf(c.f, "H%.1fV%.1f", px, py);
        taken[n_taken++] = (SvgBox){px0, py0 - 1, px, py0 + 1};
        taken[n_taken++] = (SvgBox){px - 1, fmin(py, py0), px + 1, fmax(py, py0)};
    }
    fprintf(c.f, "\"/>\n<g stroke-width=\"1.5\">\n");
    for (int i = 0; i < n; i++) {
        if (!point_drawn(x[i], y[i])) continue;
        double px = chart_px(&c, x[i]), py = chart_py(&c, y[i]);
        fprintf(c.f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" stroke=\"%s\"/>\n",
                px, py, on_front[i] ? colour : "#fff", on_front[i] ? colour : "#666");
        taken[n_taken++] = (SvgBox){px - 4, py - 4, px + 4, py + 4};
    }
    fprintf(c.f, "</g>\n<g font-size=\"10\">\n");
    for (int i = 0; i < n; i++) {
        if (!point_drawn(x[i], y[i]) || labels[i] == NULL) continue;
        SvgBox b = label_place(&c, chart_px(&c, x[i]), chart_py(&c, y[i]), labels[i], taken, n_taken);
        taken[n_taken++] = b;
        svg_text(c.f, b.x0, b.y1 - 2, "", labels[i]);
    }
    fprintf(c.f, "</g>\n");
    chart_key(&c, 0, colour, KEY_LINE, "Pareto front");
    chart_key(&c, 1, "#666", KEY_HOLLOW, "other models");
    chart_end(&c);
    free(taken);
    free(front);
    free(on_front);
}

// vertical bars, grouped: n_groups groups (e.g. students), each with n_bars bars (e.g. +RD, +ED,
// +DLLM2Rec), value[g * n_bars + b], a whisker [lo, hi] each (lo, hi NULL for none). The y axis
// holds 0, where bars start; a zero line when the axis spans it (values are often differences
// A - B with a 95% interval). bar_labels (n_bars) in the legend, group_labels (n_groups) under the
// groups; a->xlabel may be NULL; a->log_x is not read (there is no x scale).
static void svg_bar_chart(const char* path, const SvgAxes* a, const char* const* group_labels, int n_groups,
                          const char* const* bar_labels, int n_bars, const double* value, const double* lo, const double* hi) {
    if (n_groups < 1 || n_bars < 1) die("chart '%s': %d groups of %d bars, need at least one of each", path, n_groups, n_bars);
    SvgChart c = {.x = {.lo = 0, .hi = n_groups}, .y = axis_empty(0)};
    int legend_chars = 0;
    for (int b = 0; b < n_bars; b++) legend_chars = max_int(legend_chars, text_chars(bar_labels[b]));
    for (int i = 0; i < n_groups * n_bars; i++) {
        axis_add(&c.y, value[i]);
        if (lo) axis_add(&c.y, lo[i]);
        if (hi) axis_add(&c.y, hi[i]);
    }
    axis_settle(&c.y, 1);
    chart_begin(&c, path, a, legend_chars);
    double group_w = (c.right - c.left) / n_groups, bar_w = 0.8 * group_w / n_bars;  // a fifth of each group is the gap
    for (int g = 0; g < n_groups; g++) {
        double x0 = c.left + g * group_w + 0.1 * group_w;
        svg_text(c.f, x0 + 0.4 * group_w, c.bottom + 18, "text-anchor=\"middle\"", group_labels[g]);
        for (int b = 0; b < n_bars; b++) {
            double v = value[g * n_bars + b];
            if (!isfinite(v)) continue;
            double top = chart_py(&c, fmax(v, 0.0)), base = chart_py(&c, fmin(v, 0.0));
            fprintf(c.f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                    x0 + b * bar_w + 1, top, bar_w - 2, base - top, SVG_COLOUR(b));  // 1 pixel apart
        }
    }
    if (c.y.lo < 0 && c.y.hi > 0) fprintf(c.f, "<path d=\"M%.1f %.1fH%.1f\" stroke=\"#222\"/>\n", c.left, chart_py(&c, 0), c.right);
    if (lo || hi) {  // over the bars and the zero line
        fprintf(c.f, "<g stroke=\"#222\" stroke-width=\"1.5\">\n");
        for (int i = 0; i < n_groups * n_bars; i++) {
            double x = c.left + (i / n_bars + 0.1) * group_w + (i % n_bars + 0.5) * bar_w;
            if (isfinite(value[i])) chart_whisker(&c, x, lo ? lo[i] : value[i], hi ? hi[i] : value[i]);
        }
        fprintf(c.f, "</g>\n");
    }
    for (int b = 0; b < n_bars; b++) chart_key(&c, b, SVG_COLOUR(b), KEY_BOX, bar_labels[b]);
    chart_end(&c);
}
