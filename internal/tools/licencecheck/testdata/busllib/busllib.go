// Package busllib is a fixture whose LICENSE is the Business Source License.
package busllib

// X is exported.
const X = 1
