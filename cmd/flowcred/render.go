package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Output of plan and apply: text for people, JSON for pipelines. Neither
// ever holds a secret value: the plugin's dry run answers secret fields by
// name only, and secrets from the environment by their variable's name.

// pastTense is how apply reports an action it carried out.
var pastTense = map[string]string{
	actionCreate: "created", actionUpdate: "updated", actionDelete: "deleted",
	actionUnchanged: "unchanged", actionRefused: "refused",
}

func verb(action string, applied bool) string {
	if applied {
		return pastTense[action]
	}
	return action
}

// printReport prints one line per secret and binding, the field changes
// under each binding, refusals on stderr, and a summary.
func printReport(stdout, stderr io.Writer, rep *deployReport, secrets bool) {
	for _, s := range rep.Secrets {
		line := fmt.Sprintf("secret %s: %s", s.Name, verb(s.Action, rep.Applied))
		if s.Action != actionUnchanged {
			line += " (from " + s.Source + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	for _, b := range rep.Bindings {
		head := fmt.Sprintf("binding %s (%s): ", b.Handle, b.Kind)
		if b.Action == actionRefused {
			fmt.Fprintf(stderr, "%srefused: %s\n", head, b.Error)
			continue
		}
		fmt.Fprintln(stdout, head+verb(b.Action, rep.Applied))
		for _, c := range b.Changes {
			fmt.Fprintln(stdout, "  "+changeLine(c))
		}
		for _, w := range b.Warnings {
			fmt.Fprintf(stdout, "  warning: %s\n", w)
		}
	}
	n := rep.counts()
	var sc map[string]int
	if secrets {
		sc = map[string]int{}
		for _, s := range rep.Secrets {
			sc[s.Action]++
		}
	}
	if rep.Applied {
		line := fmt.Sprintf("%d created, %d updated, %d deleted, %d unchanged, %d refused",
			n[actionCreate], n[actionUpdate], n[actionDelete], n[actionUnchanged], n[actionRefused])
		if sc != nil {
			line += fmt.Sprintf("; secrets: %d created, %d updated, %d unchanged", sc[actionCreate], sc[actionUpdate], sc[actionUnchanged])
		}
		fmt.Fprintln(stdout, line)
		return
	}
	line := fmt.Sprintf("Plan: %d to create, %d to update, %d to delete, %d unchanged, %d refused",
		n[actionCreate], n[actionUpdate], n[actionDelete], n[actionUnchanged], n[actionRefused])
	if sc != nil {
		line += fmt.Sprintf("; secrets: %d to create, %d to update, %d unchanged", sc[actionCreate], sc[actionUpdate], sc[actionUnchanged])
	}
	fmt.Fprintln(stdout, line)
}

// changeLine renders a field change: + added, ~ changed, - removed; a
// secret value only as such.
func changeLine(c fieldChange) string {
	if c.Secret {
		switch c.Change {
		case "added":
			return "+ " + c.Field + ": (secret value)"
		case "removed":
			return "- " + c.Field + ": (secret value removed)"
		}
		return "~ " + c.Field + ": (secret value changed)"
	}
	switch c.Change {
	case "added":
		return "+ " + c.Field + ": " + renderValue(c.New)
	case "removed":
		return "- " + c.Field + ": " + renderValue(c.Old)
	}
	return "~ " + c.Field + ": " + renderValue(c.Old) + " -> " + renderValue(c.New)
}

// renderValue shows a field's value: strings quoted, lists as [a b], maps
// as {k: v} sorted by key.
func renderValue(v interface{}) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []interface{}:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]interface{}:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s: %q", k, fmt.Sprint(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// printReportJSON prints the report with a summary.
func printReportJSON(stdout io.Writer, rep *deployReport) {
	n := rep.counts()
	out := struct {
		*deployReport
		Summary        map[string]int `json:"summary"`
		ChangesPending bool           `json:"changes_pending"`
	}{rep, map[string]int{
		actionCreate: n[actionCreate], actionUpdate: n[actionUpdate], actionDelete: n[actionDelete],
		actionUnchanged: n[actionUnchanged], actionRefused: n[actionRefused],
	}, rep.pending()}
	if rep.Applied {
		// What is left to do after an apply: only what was refused.
		out.ChangesPending = false
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(stdout, string(b))
}
