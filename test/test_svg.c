// test_svg.c: tests of svg.h. Ticks and the Pareto front against hand-worked
// cases; each chart writes a whole, well-formed file (escaped text, balanced
// groups, NaN points skipped, no temp file left); a log axis refuses x <= 0.
// Included into the unity test runner; the entry point is run_svg_tests().
#include <dirent.h>

// ----------------------------------------------------------------------------
// ticks

// axis_ticks(lo, hi) gives want (n_want), or when want is NULL anything that covers [lo, hi] with
// 4 to 11 ticks, linear ones in even steps of 1, 2 or 5 x 10^k
static void check_ticks(double lo, double hi, int log_axis, const double* want, int n_want) {
    double t[SVG_MAX_TICKS];
    int n = axis_ticks(lo, hi, log_axis, t, SVG_MAX_TICKS);
    char got[512] = "";
    for (int i = 0, len = 0; i < n && len < 480; i++) len += snprintf(got + len, sizeof(got) - len, " %g", t[i]);
    if (want) {
        int same = n == n_want;
        for (int i = 0; i < n && same; i++) same = fabs(t[i] - want[i]) <= 1e-12 * fmax(1.0, fabs(want[i]));
        CHECK(same, "axis_ticks(%g, %g, log %d): got%s", lo, hi, log_axis, got);
    }
    CHECK(n >= 4 && n <= 11 && t[0] <= lo && t[n - 1] >= hi, "axis_ticks(%g, %g, log %d): %d ticks covering the range, got%s",
          lo, hi, log_axis, n, got);
    if (log_axis) return;
    double step = t[1] - t[0], mantissa = step / pow(10, floor(log10(step) + 1e-9));
    int even = fabs(mantissa - 1) < 1e-6 || fabs(mantissa - 2) < 1e-6 || fabs(mantissa - 5) < 1e-6;
    for (int i = 1; i < n; i++) even = even && fabs(t[i] - t[i - 1] - step) <= 1e-9 * step;
    CHECK(even, "axis_ticks(%g, %g): even steps of 1, 2 or 5 x 10^k, got%s", lo, hi, got);
}

static void axis_ticks_log_of_zero(void* arg) {
    (void)arg;
    double t[SVG_MAX_TICKS];
    axis_ticks(0, 10, 1, t, SVG_MAX_TICKS);
}

static void test_svg_ticks(void) {
    check_ticks(0, 1, 0, (double[]){0, 0.2, 0.4, 0.6, 0.8, 1}, 6);
    check_ticks(0.43, 0.52, 0, (double[]){0.42, 0.44, 0.46, 0.48, 0.5, 0.52}, 6);
    check_ticks(0.3, 0.7, 0, (double[]){0.3, 0.4, 0.5, 0.6, 0.7}, 5);  // 0.3 / 0.1 = 2.9999999999999996: still the first tick
    check_ticks(-0.02, 0.03, 0, (double[]){-0.02, -0.01, 0, 0.01, 0.02, 0.03}, 6);
    check_ticks(-0.0109, 0.0129, 0, (double[]){-0.015, -0.01, -0.005, 0, 0.005, 0.01, 0.015}, 7);
    check_ticks(1, 1000, 1, (double[]){1, 10, 100, 1000}, 4);
    check_ticks(0.5, 200, 1, (double[]){0.1, 1, 10, 100, 1000}, 5);
    check_ticks(3, 40, 1, (double[]){1, 2, 5, 10, 20, 50, 100}, 7);                 // 2 decades: 2x and 5x between
    check_ticks(1e-6, 1e12, 1, (double[]){1e-6, 1e-3, 1, 1e3, 1e6, 1e9, 1e12}, 7);  // every 3rd power
    check_ticks(65, 480, 1, (double[]){60, 70, 80, 90, 100, 200, 300, 400, 500}, 9);  // under a decade: 1 to 9 x 10^k
    check_ticks(0.15, 1.49, 1, (double[]){0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2}, 11);  // the most there can be
    check_ticks(9, 18, 1, (double[]){8, 10, 12, 14, 16, 18}, 6);  // 9, 10, 20 are too few: the linear ticks
    check_ticks(65, 80, 1, (double[]){65, 70, 75, 80}, 4);
    check_ticks(5, 5, 0, NULL, 0);  // one value still makes an axis
    check_ticks(0, 0, 0, NULL, 0);
    check_ticks(-3, -3, 0, NULL, 0);
    check_ticks(7, 7, 1, NULL, 0);
    check_ticks(1e5, 1e5 + 1e-10, 0, NULL, 0);  // equal but for rounding: not 10^16 steps of 10^-11
    const double ranges[][2] = {{123, 98765}, {-5e-7, 3e-6}, {0.999, 1.001}, {-1, -0.5}, {1e5, 1e5 + 1}, {-7, 1e4}, {0.1, 0.3}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) check_ticks(ranges[i][0], ranges[i][1], 0, NULL, 0);
    double t[SVG_MAX_TICKS];
    char zero[16];
    axis_ticks(-0.02, 0.03, 0, t, SVG_MAX_TICKS);
    snprintf(zero, sizeof(zero), "%g", t[2]);
    CHECK(strcmp(zero, "0") == 0, "the tick at zero prints as \"0\", got \"%s\"", zero);
    check_dies("axis_ticks: a log axis from 0", axis_ticks_log_of_zero, NULL, "needs values > 0");
}

// ----------------------------------------------------------------------------
// where a point's label goes

static int box_at(SvgBox b, double x0, double y0) { return fabs(b.x0 - x0) < 1e-9 && fabs(b.y0 - y0) < 1e-9; }

static void test_svg_label_place(void) {
    SvgChart c = {.left = 0, .right = 200, .top = 0, .bottom = 200};
    // the point (100, 100), label "ab": 2 x 6.5 + 4 = 17 px wide, 11 tall
    SvgBox right = label_place(&c, 100, 100, "ab", NULL, 0);
    CHECK(box_at(right, 106, 94.5), "nothing taken: the label goes right of its point, got (%g, %g)", right.x0, right.y0);
    SvgBox taken[2] = {{100, 0, 200, 200}};  // everything right of the point
    SvgBox left = label_place(&c, 100, 100, "ab", taken, 1);
    CHECK(box_at(left, 77, 94.5), "the right taken: left of its point, got (%g, %g)", left.x0, left.y0);
    // below y = 94 taken, and above y = 84: no place is clear; the one above the point covers
    // 1 px of its height (17 px^2), the corners above 2 px (34), the rest all of theirs (187)
    taken[0] = (SvgBox){0, 94, 200, 200};
    taken[1] = (SvgBox){0, 0, 200, 84};
    SvgBox least = label_place(&c, 100, 100, "ab", taken, 2);
    CHECK(box_at(least, 91.5, 83), "no place clear: the one that covers least, above the point, got (%g, %g)", least.x0, least.y0);
}

// ----------------------------------------------------------------------------
// the Pareto front

static void test_svg_pareto(void) {
    // (2, 0.5) beats (3, 0.45) (cheaper and better) and (2, 0.3) (as cheap, better); (2, 0.5) twice:
    // neither beats the other, both on; (5, 0.6) is beaten by (4, 0.6), as good and cheaper; NaN: on none
    const double x[] = {1, 2, 3, 4, 2, 2, 5, NAN, 6};
    const double y[] = {0.4, 0.5, 0.45, 0.6, 0.3, 0.5, 0.6, 0.9, NAN};
    const int want[] = {1, 1, 0, 1, 0, 1, 0, 0, 0};
    int got[9];
    int n = pareto_front(x, y, 9, got);
    CHECK(n == 4 && memcmp(got, want, sizeof(want)) == 0,
          "pareto_front: %d on it (want 4): %d %d %d %d %d %d %d %d %d", n, got[0], got[1], got[2], got[3], got[4], got[5], got[6], got[7], got[8]);
    n = pareto_front(x, y, 5, got);  // the first five alone
    CHECK(n == 3 && got[0] && got[1] && !got[2] && got[3] && !got[4], "pareto_front of five: %d on it, want 3", n);
}

// ----------------------------------------------------------------------------
// files

static char svg_dir[64];

// the times needle occurs in text
static int svg_count(const char* text, const char* needle) {
    int n = 0;
    for (const char* p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

// the chart at path is one whole SVG with the escaped title and circles <circle> elements;
// returns its text (the caller frees it) for more checks
static char* check_svg_file(const char* path, int circles) {
    char* s = read_file(path, NULL);
    size_t len = strlen(s);
    CHECK(strncmp(s, "<?xml", 5) == 0 && strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\"") &&
          len > 8 && strcmp(s + len - 7, "</svg>\n") == 0, "%s: an XML declaration, <svg>, ending in </svg>", path);
    int opened = svg_count(s, "<g ") + svg_count(s, "<g>"), closed = svg_count(s, "</g>");
    CHECK(opened == closed && opened > 0, "%s: %d <g> and %d </g>", path, opened, closed);
    CHECK(strstr(s, ">R&amp;D &lt;b&gt; &quot;q&quot;</text>") && !strstr(s, "R&D"), "%s: the title escaped", path);
    CHECK(svg_count(s, "<circle") == circles, "%s: %d circles, want %d", path, svg_count(s, "<circle"), circles);
    CHECK(!strstr(s, "nan") && !strstr(s, "inf"), "%s: no NaN or infinity in the coordinates", path);
    return s;
}

static void svg_log_chart_of_zero(void* arg) {
    SvgAxes a = {.title = "log", .log_x = 1};
    const double x[] = {1, 0, 10}, y[] = {1, 2, 3};
    svg_scatter_pareto((const char*)arg, &a, (const char* const[]){"a", "b", "c"}, x, y, 3);
}

static void svg_line_chart_of_zero(void* arg) {
    SvgAxes a = {.title = "log", .log_x = 1};
    const double x[] = {1, -2}, y[] = {1, 2};
    SvgSeries s = {.label = "neg", .n = 2, .x = x, .y = y};
    svg_line_chart((const char*)arg, &a, &s, 1);
}

static void test_svg_files(void) {
    SvgAxes a = {.title = "R&D <b> \"q\"", .xlabel = "depth", .ylabel = "NDCG@10"};
    char path[128];
    // lines: one point NaN (skipped, the line broken there), error bars from lo alone
    const double x[] = {1, 2, 4, 8}, y1[] = {0.45, 0.47, NAN, 0.5}, y2[] = {0.46, 0.46, 0.48, 0.52};
    const double lo[] = {0.44, 0.46, 0.47, 0.49};
    SvgSeries s[2] = {{.label = "SASRec <rd>", .n = 4, .x = x, .y = y1, .lo = lo, .hi = y2},
                      {.label = "GRU4Rec", .n = 4, .x = x, .y = y2, .lo = lo}};
    snprintf(path, sizeof(path), "%s/line.svg", svg_dir);
    svg_line_chart(path, &a, s, 2);
    char* text = check_svg_file(path, 3 + 4 + 2);  // the points drawn, a legend marker each
    CHECK(strstr(text, ">SASRec &lt;rd&gt;</text>") != NULL, "line chart: the legend escaped");
    const char* line = strstr(text, "stroke-width=\"2\" d=\"");  // the first series' line
    int pieces = 0;
    for (; line && *line != '\n'; line++) pieces += *line == 'M';
    CHECK(pieces == 2, "line chart: the line broken at the NaN point, in %d pieces, want 2", pieces);
    free(text);
    // the same values everywhere: a degenerate range
    const double flat[] = {0.3, 0.3, 0.3, 0.3};
    SvgSeries f = {.label = "a legend label far too long to fit beside", .n = 4, .x = flat, .y = flat};
    snprintf(path, sizeof(path), "%s/flat.svg", svg_dir);
    svg_line_chart(path, &a, &f, 1);
    text = check_svg_file(path, 4 + 1);
    CHECK(strstr(text, ">a legend label far too lo...</text>") != NULL, "a long legend label is cut to %d characters", SVG_LEGEND_CHARS);
    CHECK(strstr(text, "nothing to draw yet") == NULL, "a chart with points does not say it has none");
    free(text);
    // no point at all (a study's report before its models are trained): the chart says so
    SvgSeries none = {.label = "E4SRec_l", .n = 0, .x = x, .y = y1};
    snprintf(path, sizeof(path), "%s/empty.svg", svg_dir);
    svg_line_chart(path, &a, &none, 1);
    text = check_svg_file(path, 1);
    CHECK(strstr(text, ">nothing to draw yet</text>") != NULL, "an empty chart says there is nothing to draw yet");
    free(text);
    // scatter on a log x: the hand-worked set above and a NaN point
    const double cost[] = {1, 2, 3, 4, 2, NAN}, ndcg[] = {0.4, 0.5, 0.45, 0.6, 0.3, 0.7};
    const char* names[] = {"A", "B&C", "D", "E", "F", "nowhere"};
    SvgAxes la = a;
    la.log_x = 1;
    snprintf(path, sizeof(path), "%s/scatter.svg", svg_dir);
    svg_scatter_pareto(path, &la, names, cost, ndcg, 6);
    text = check_svg_file(path, 5 + 2);
    CHECK(svg_count(text, "r=\"4\" fill=\"#fff\"") == 2 && strstr(text, ">B&amp;C</text>") && !strstr(text, "nowhere"),
          "scatter: two hollow points, labels escaped, the NaN point not drawn");
    free(text);
    // bars: 3 groups x 2, one value NaN, negative differences with intervals
    const double v[] = {0.01, -0.005, 0.002, NAN, -0.01, 0.012}, vlo[] = {0.004, -0.009, -0.001, 0, -0.014, 0.006};
    const double vhi[] = {0.016, -0.001, 0.005, 0, -0.006, 0.018};
    const char* groups[] = {"SASRec", "GRU4Rec", "Caser"}, *bars[] = {"+RD", "+DLLM2Rec"};
    SvgAxes ba = {.title = a.title, .ylabel = "difference"};
    snprintf(path, sizeof(path), "%s/bars.svg", svg_dir);
    svg_bar_chart(path, &ba, groups, 3, bars, 2, v, vlo, vhi);
    text = check_svg_file(path, 0);
    CHECK(svg_count(text, "<rect") == 2 + 5 + 2, "bar chart: background, frame, 5 bars, 2 legend boxes: %d rects",
          svg_count(text, "<rect"));
    CHECK(strstr(text, ">-0.02</text>") && strstr(text, ">0</text>") && strstr(text, ">0.02</text>"),
          "bar chart: ticks -0.02 to 0.02 by 0.01 around [-0.014, 0.018]");
    free(text);
    // refusals: nothing written
    snprintf(path, sizeof(path), "%s/log0.svg", svg_dir);
    check_dies("scatter: a log x axis with x = 0", svg_log_chart_of_zero, path, "is not > 0");
    check_dies("line chart: a log x axis with x < 0", svg_line_chart_of_zero, path, "the x axis is logarithmic");
    CHECK(access(path, F_OK) != 0, "a refused chart leaves no file");
}

static void run_svg_tests(void) {
    test_svg_ticks();
    test_svg_label_place();
    test_svg_pareto();
    snprintf(svg_dir, sizeof(svg_dir), "/tmp/slmrec_test_svg_%ld", (long)getpid());
    make_dir(svg_dir);
    test_svg_files();
    // every file complete under its name, then removed
    DIR* d = opendir(svg_dir);
    int files = 0, temps = 0;
    for (struct dirent* e; d && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", svg_dir, e->d_name);
        files++;
        temps += strstr(e->d_name, TMP_SUFFIX) != NULL;
        unlink(path);
    }
    if (d) closedir(d);
    CHECK(files == 5 && temps == 0, "%s: 5 charts and no temp file, got %d files, %d temp", svg_dir, files, temps);
    CHECK(rmdir(svg_dir) == 0, "remove %s", svg_dir);
}
