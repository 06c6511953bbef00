package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/caddy-revocation/caddy-revocation/bench/internal/proc"
)

// The paired overhead (-pairs): the same binary with and without one
// scenario's directive, as a pair of processes running side by side and
// warm, measured over several slices in which both are loaded at once,
// each by its own wrk (-together, the default), so that whatever the
// shared machine does at any moment falls on both alike.
//
// Why: restarting caddy for every 5 s round and loading one process at
// a time left each round at the mercy of the few seconds it ran in. On
// this 2-core machine, shared with other work, a process's CPU time per
// request moved between 74 and 110 µs from one 3 s slice to the next,
// the baseline's as much as the directive's, so that even adjacent
// slices of the two (-together=false, ABBA order) gave ratios from 0.92
// to 1.24. Loaded at once, the two processes' slices agreed within a
// few percent (ratios 1.02-1.06) under the same disturbances. Several
// pairs of processes are started, so that what one process's memory
// layout is worth averages out too.
//
// Each pair gives one ratio: the directive process's CPU time per
// request over all its slices, divided by the baseline process's over
// all its own. The run reports the mean of the pairs' ratios with its
// 95% confidence interval (Student's t over pairs), their median and
// interquartile range, and the throughput ratio likewise.

type pairResult struct {
	Pair      int     `json:"pair"`
	BaseCPUus float64 `json:"base_cpu_us_per_request"`
	DirCPUus  float64 `json:"directive_cpu_us_per_request"`
	CPURatio  float64 `json:"cpu_ratio"`
	BaseRPS   float64 `json:"base_rps"`
	DirRPS    float64 `json:"directive_rps"`
	RPSRatio  float64 `json:"rps_ratio"`
	// SliceRatios are the CPU ratios of each alternation, for the spread
	// within a pair.
	SliceRatios []float64 `json:"slice_cpu_ratios"`
}

type pairedSummary struct {
	Scenario    string       `json:"scenario"`
	Pairs       []pairResult `json:"pairs"`
	CPUMean     float64      `json:"cpu_ratio_mean"`
	CPUCI95     float64      `json:"cpu_ratio_ci95"`
	CPUMedian   float64      `json:"cpu_ratio_median"`
	CPUQ1       float64      `json:"cpu_ratio_q1"`
	CPUQ3       float64      `json:"cpu_ratio_q3"`
	RPSMean     float64      `json:"rps_ratio_mean"`
	RPSCI95     float64      `json:"rps_ratio_ci95"`
	Slices      int          `json:"slices_per_pair"`
	SliceLength string       `json:"slice"`
}

// runPaired measures scenario sc against the baseline base in pairs of
// side-by-side processes.
func runPaired(base, sc scenario, pairs, nslices int, slice, warmup time.Duration, start func(scenario) (*instance, error),
	load loader, jsonOut string) error {
	sum := pairedSummary{Scenario: sc.name, Slices: nslices, SliceLength: slice.String()}
	for p := 1; p <= pairs; p++ {
		pr, err := runPair(p, base, sc, nslices, slice, warmup, start, load)
		if err != nil {
			return fmt.Errorf("pair %d: %w", p, err)
		}
		fmt.Fprintf(os.Stderr, "pair %2d  CPU %6.2f vs %6.2f µs/req  ratio %.4f (slices %.3f-%.3f)  throughput ratio %.4f\n",
			p, pr.DirCPUus, pr.BaseCPUus, pr.CPURatio, slices0(pr.SliceRatios, false), slices0(pr.SliceRatios, true), pr.RPSRatio)
		sum.Pairs = append(sum.Pairs, pr)
	}
	cpu := make([]float64, len(sum.Pairs))
	rps := make([]float64, len(sum.Pairs))
	for i, pr := range sum.Pairs {
		cpu[i], rps[i] = pr.CPURatio, pr.RPSRatio
	}
	sum.CPUMean, sum.CPUCI95 = meanCI(cpu)
	sum.RPSMean, sum.RPSCI95 = meanCI(rps)
	sum.CPUQ1, sum.CPUMedian, sum.CPUQ3 = quartiles(cpu)
	fmt.Printf("\n| setup | CPU per request, ratio to %s: mean ± 95%% CI | median (IQR) | throughput ratio: mean ± 95%% CI |\n|---|---|---|---|\n", base.name)
	fmt.Printf("| %s | %.4f ± %.4f | %.4f (%.4f-%.4f) | %.4f ± %.4f |\n", sc.name, sum.CPUMean, sum.CPUCI95,
		sum.CPUMedian, sum.CPUQ1, sum.CPUQ3, sum.RPSMean, sum.RPSCI95)
	how := "both loaded at once, each by its own"
	if !together {
		how = "loaded in turn (ABBA) by one"
	}
	fmt.Printf("\n%d pairs of side-by-side processes, %d slices of %s each after %s of warm-up, %s wrk -t%d -c%d; the caddy process's CPU time from /proc.\n",
		pairs, nslices, slice, warmup, how, load.threads, load.conns)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(sum, "", "  ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func runPair(p int, base, sc scenario, nslices int, slice, warmup time.Duration, start func(scenario) (*instance, error),
	load loader) (pairResult, error) {
	// Start them in alternating order, so neither is always the older.
	order := []scenario{base, sc}
	if p%2 == 0 {
		slices.Reverse(order)
	}
	insts := map[string]*instance{}
	defer func() {
		for _, in := range insts {
			proc.Stop(in.cmd)
		}
	}()
	for _, s := range order {
		in, err := start(s)
		if err != nil {
			return pairResult{}, fmt.Errorf("%s: %w", s.name, err)
		}
		insts[s.name] = in
	}
	for _, s := range order {
		if _, err := load.run(insts[s.name].url, warmup); err != nil {
			return pairResult{}, fmt.Errorf("%s: warm-up: %w", s.name, err)
		}
	}
	type tot struct {
		cpu      time.Duration
		requests float64
		secs     float64
	}
	totals := map[string]*tot{base.name: {}, sc.name: {}}
	pr := pairResult{Pair: p}
	for i := 0; i < nslices; i++ {
		// ABBA: A B, B A, A B, ... with the pair's own starting order.
		o := slices.Clone(order)
		if i%2 == 1 {
			slices.Reverse(o)
		}
		got := map[string]result{}
		if together {
			// Both at once, each with its own wrk: every moment's
			// disturbance falls on both.
			type out struct {
				name string
				res  result
				err  error
			}
			ch := make(chan out, len(o))
			for _, s := range o {
				go func() {
					res, err := load.measure(insts[s.name], slice, "")
					ch <- out{s.name, res, err}
				}()
			}
			for range o {
				x := <-ch
				if x.err != nil {
					return pairResult{}, fmt.Errorf("%s: %w", x.name, x.err)
				}
				got[x.name] = x.res
			}
		} else {
			for _, s := range o {
				res, err := load.measure(insts[s.name], slice, "")
				if err != nil {
					return pairResult{}, fmt.Errorf("%s: %w", s.name, err)
				}
				got[s.name] = res
			}
		}
		for _, s := range o {
			res := got[s.name]
			t := totals[s.name]
			t.cpu += res.cpu
			t.requests += res.requests
			t.secs += slice.Seconds()
			if verbose {
				fmt.Fprintf(os.Stderr, "  pair %d slice %d  %-28s %8.0f req/s  %6.2f µs/req\n", p, i+1, s.name, res.rps, res.cpuUS)
			}
		}
		pr.SliceRatios = append(pr.SliceRatios, got[sc.name].cpuUS/got[base.name].cpuUS)
	}
	b, d := totals[base.name], totals[sc.name]
	pr.BaseCPUus = float64(b.cpu.Nanoseconds()) / 1e3 / b.requests
	pr.DirCPUus = float64(d.cpu.Nanoseconds()) / 1e3 / d.requests
	pr.CPURatio = pr.DirCPUus / pr.BaseCPUus
	pr.BaseRPS, pr.DirRPS = b.requests/b.secs, d.requests/d.secs
	pr.RPSRatio = pr.DirRPS / pr.BaseRPS
	return pr, nil
}

// verbose prints every slice (-v); together loads both processes of a
// pair at once (-together).
var verbose, together bool

func slices0(v []float64, hi bool) float64 {
	if hi {
		return slices.Max(v)
	}
	return slices.Min(v)
}

// meanCI returns the mean of v and the half-width of its 95% confidence
// interval (Student's t).
func meanCI(v []float64) (mean, half float64) {
	n := float64(len(v))
	for _, x := range v {
		mean += x / n
	}
	if len(v) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / (n - 1))
	return mean, tQuantile975(len(v)-1) * sd / math.Sqrt(n)
}

// tQuantile975 is the 97.5th percentile of Student's t with df degrees
// of freedom.
func tQuantile975(df int) float64 {
	table := []float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086}
	if df < len(table) {
		return table[df]
	}
	return 1.96 + 2.5/float64(df) // close enough past 20
}

// quartiles returns the first quartile, the median and the third
// quartile of v (linear interpolation between closest ranks).
func quartiles(v []float64) (q1, med, q3 float64) {
	s := slices.Sorted(slices.Values(v))
	at := func(q float64) float64 {
		if len(s) == 0 {
			return math.NaN()
		}
		pos := q * float64(len(s)-1)
		i := int(pos)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (pos-float64(i))*(s[i+1]-s[i])
	}
	return at(0.25), at(0.5), at(0.75)
}
