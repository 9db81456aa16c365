package admin

import (
	"net/http"
	"net/url"

	"github.com/tenantry/tenantry/catalog"
)

func (h *Handler) listClusters(w http.ResponseWriter, r *http.Request) error {
	clusters, err := h.store.Clusters(r.Context())
	if err != nil {
		return err
	}
	out := ClusterList{Clusters: make([]catalog.Cluster, len(clusters))}
	for i, c := range clusters {
		out.Clusters[i] = c.Redacted()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) createCluster(w http.ResponseWriter, r *http.Request) error {
	var req CreateClusterRequest
	if err := h.decodeJSON(w, r, &req, false); err != nil {
		return err
	}
	a, err := actor(r, req.Reason)
	if err != nil {
		return err
	}
	c, err := h.store.CreateCluster(r.Context(), a, catalog.Cluster{
		Name:       req.Name,
		ConnString: req.ConnString,
		Region:     req.Region,
		Role:       req.Role,
		MaxConns:   req.MaxConns,
		MaxTenants: req.MaxTenants,
		Labels:     req.Labels,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/admin/v1/clusters/"+url.PathEscape(c.Name))
	writeJSON(w, http.StatusCreated, c.Redacted())
	return nil
}
