# Bar chart of the ratios to plain PostgreSQL, one cluster of bars per
# benchmark, one bar per system. bench/report.py calls it with:
#   gnuplot -e "datafile='...'; outfile='...'; ncol=N; t1='...'; t2='...'; charttitle='...'; subtitle='...'" ratios.gnuplot
# datafile: "label" ratio1 ratio2 ... ('?' where a system has no value).
set terminal pngcairo size 1400,720 enhanced font "DejaVu Sans,12"
set output outfile
set datafile missing '?'
set title charttitle . "\n{/*0.8 " . subtitle . "}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "ratio to plain (throughput)"
set yrange [0:1.25<*]
set ytics 0.1
set grid ytics
set key top right horizontal
set xtics nomirror scale 0
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "black" lw 2 dt 2 front
set label "plain = 1.0" at graph 0.005, first 1.025 left font ",10"
colors = "#1f77b4 #ff7f0e #2ca02c #9467bd #8c564b #e377c2 #7f7f7f #bcbd22"
w = 1.0 / (ncol + 1)
plot for [i=1:ncol] datafile using (column(i+1)):xtic(1) title value(sprintf('t%d', i)) noenhanced lc rgb word(colors, i), \
     for [i=1:ncol] datafile using ($0 + (i - (ncol + 1) / 2.0) * w):(column(i+1)):(sprintf("%.2f", column(i+1))) \
       with labels offset 0,0.7 font ",10" notitle
