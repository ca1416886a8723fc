// Package docs holds the project's documentation (Markdown files in this
// folder) and a test that keeps the code's citations of it honest.
package docs
