// Tenants may live on several servers: null means the catalog's own server,
// otherwise a name from TENANT_SERVERS.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.alterTable("schools", (t) => {
    t.text("school_server").nullable();
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.alterTable("schools", (t) => {
    t.dropColumn("school_server");
  });
}
