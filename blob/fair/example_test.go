package fair_test

import (
	"context"
	"fmt"

	"github.com/tenantry/tenantry/blob/fair"
	"github.com/tenantry/tenantry/tenant"
)

// A scheduler with one slot: an enterprise tenant (weight 4) and a free one
// (weight 1) queue behind it; the enterprise tenant gets four slots for each
// of the free tenant's.
func ExampleScheduler() {
	s, _ := fair.NewScheduler(&fair.SchedulerConfig{Slots: 1})
	ent := &tenant.Tenant{ID: "ent", Tier: "enterprise"}
	free := &tenant.Tenant{ID: "free", Tier: "free"}
	fmt.Println(s.Weight(ent), s.Weight(free))

	release, err := s.Acquire(context.Background(), free, 256<<10)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Stats().Used)
	release()
	// Output:
	// 4 1
	// 1
}
