// Copyright (c) Example
// SPDX-License-Identifier: MPL-2.0

// Package spdxbusl is an MPL-2.0 fixture.
package spdxbusl
