// Copyright (c) Example
// SPDX-License-Identifier: BUSL-1.1

// Package physical mirrors github.com/hashicorp/vault/sdk v0.24+ physical/path_error.go.
package physical

// X is exported.
const X = 1
