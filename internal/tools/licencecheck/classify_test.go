package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSPDXAllowed(t *testing.T) {
	allow := map[string]bool{}
	for _, id := range []string{"MPL-2.0", "Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "ISC"} {
		allow[id] = true
	}
	for _, tc := range []struct {
		expr    string
		want    bool
		wantErr bool
	}{
		{"MPL-2.0", true, false},
		{"BUSL-1.1", false, false},
		{"MIT OR BUSL-1.1", true, false},
		{"MIT AND BUSL-1.1", false, false},
		{"(MIT OR BUSL-1.1) AND ISC", true, false},
		{"(MIT AND BUSL-1.1) OR Apache-2.0", true, false},
		{"mit", false, false}, // identifiers are case-sensitive here: fail closed
		{"Apache-2.0 WITH LLVM-exception", false, false},
		{"MPL-2.0+", true, false},
		{"LicenseRef-Proprietary", false, false},
		{"", false, true},
		{"MIT OR", false, true},
		{"(MIT", false, true},
		{"MIT Apache-2.0", false, true},
	} {
		got, err := spdxAllowed(tc.expr, allow)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("spdxAllowed(%q) = %v, %v; want %v, error %v", tc.expr, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestClassify(t *testing.T) {
	sdk := "Copyright IBM Corp.\n\nMozilla Public License, version 2.0\n\n1. Definitions\n"
	busl := "Business Source License 1.1\n\nParameters\n\nLicensor: HashiCorp, Inc.\n"
	bsd3 := "Redistribution and use in source and binary forms, with or without\nmodification, are permitted provided that ...\n" +
		"   * Redistributions of source code must retain the above copyright\n   * Neither the name of Google LLC nor the names of its\n" +
		"contributors may be used to endorse or promote products derived from\nthis software without specific prior written permission.\n"
	bsd2 := "Redistribution and use in source and binary forms, with or without modification, are permitted provided that\n" +
		"* Redistributions of source code must retain the above copyright notice\n* Redistributions in binary form must reproduce the above\n"
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"mpl", sdk, []string{"MPL-2.0"}},
		{"busl", busl, []string{"BUSL-1.1"}},
		{"bsd3", bsd3, []string{"BSD-3-Clause"}},
		{"bsd2", bsd2, []string{"BSD-2-Clause"}},
		{"apache+bsd3", "                Apache License\n           Version 2.0, January 2004\n\n" + bsd3, []string{"Apache-2.0", "BSD-3-Clause"}},
		{"unknown", "All rights reserved.", nil},
	} {
		if got := classify(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("%s: classify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSPDXInFileCommentsOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.go")
	src := "// Copyright (c) HashiCorp, Inc.\n// SPDX-License-Identifier: BUSL-1.1\n\npackage x\n\n" +
		"/* SPDX-License-Identifier: MIT */\nconst tag = \"SPDX-License-Identifier: GPL-3.0\"\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	hits, err := spdxInFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []spdxHit{{2, "BUSL-1.1"}, {6, "MIT"}}
	if !slices.Equal(hits, want) {
		t.Fatalf("spdxInFile = %v, want %v", hits, want)
	}
}
