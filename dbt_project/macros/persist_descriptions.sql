{#-
  The YAML descriptions of the models built in this run, as DuckDB comments on their relations
  and columns (`select * from duckdb_columns() where comment is not null`), written in one batch
  by the project's on-run-end hook.

  dbt's own persist_docs does the same model by model: a comment statement, a catalog query for
  the model's columns and a statement for them, each with its Python round trip, for every model
  (about a quarter of each model's time on the sample). Here the catalog is read once, and only
  columns that exist get a comment, as persist_docs does. Models that failed or were skipped keep
  no comment (they are not published either).
-#}
{% macro persist_descriptions(results) %}
  {% if not execute %}{% do return('') %}{% endif %}
  {% set built = [] %}
  {% for result in results if result.node.resource_type == 'model' and result.status == 'success' %}
    {% do built.append(result.node) %}
  {% endfor %}
  {% if built | length == 0 %}{% do return('') %}{% endif %}

  {% set catalog = run_query(
      "select schema_name, table_name, column_name from duckdb_columns() "
      ~ "where database_name = current_database()") %}
  {% set existing = {} %}
  {% for row in catalog.rows %}
    {% do existing.update({(row[0] ~ '.' ~ row[1] ~ '.' ~ row[2]) | lower: true}) %}
  {% endfor %}

  {% set statements = [] %}
  {% for node in built %}
    {% set kind = 'view' if node.config.materialized == 'view' else 'table' %}
    {% set relation = api.Relation.create(database=node.database, schema=node.schema,
                                          identifier=node.alias, type=kind) %}
    {% if node.description %}
      {% do statements.append('comment on ' ~ kind ~ ' ' ~ relation ~ ' is '
                              ~ duckdb_escape_comment(node.description) ~ ';') %}
    {% endif %}
    {% for name, column in node.columns.items()
         if column.description and existing.get((node.schema ~ '.' ~ node.alias ~ '.' ~ name) | lower) %}
      {% do statements.append('comment on column ' ~ relation ~ '.' ~ adapter.quote(name) ~ ' is '
                              ~ duckdb_escape_comment(column.description) ~ ';') %}
    {% endfor %}
  {% endfor %}
  {% if statements %}
    {% do run_query(statements | join('\n')) %}
  {% endif %}
  {% do return('') %}
{% endmacro %}
