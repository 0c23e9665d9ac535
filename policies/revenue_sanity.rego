# Sanity of the demo shop's revenue (collectors/orders_revenue_daily.yaml), per window.
#
# input: {metric, contract, collector, window: {key, start, end}, records, previous}
# (see policies/README.md). `deny` blocks publishing the run; `warn` only warns.
package signals.policies.revenue_sanity

import rego.v1

applies_to := {"shop.orders.revenue"}

# Revenue is never negative: refunds are a metric of their own.
deny contains msg if {
	some record in input.records
	record.value < 0
	msg := sprintf("%s: negative revenue %v for %v", [input.window.key, record.value, record.tags])
}

# Revenue is reported per country: a record without a country tag cannot be attributed.
deny contains msg if {
	some record in input.records
	not record.tags.country
	msg := sprintf("%s: a record without a country tag (tags %v)", [input.window.key, record.tags])
}

value_sum := sum([record.value | some record in input.records])

# A day with more than three times the revenue of the day before is worth a look (a warning,
# not a block). The demo's busiest day brings 2.4 times the day before.
growth_limit := 3

warn contains msg if {
	input.previous != null
	input.previous.value_sum > 0
	value_sum > growth_limit * input.previous.value_sum
	msg := sprintf(
		"%s: revenue %v is more than %v times the previous window's %v",
		[input.window.key, value_sum, growth_limit, input.previous.value_sum],
	)
}
