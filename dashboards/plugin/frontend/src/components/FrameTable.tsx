import React from 'react';
import { css } from '@emotion/css';
import { dateTimeFormat, FieldType, type DataFrame, type Field, type GrafanaTheme2 } from '@grafana/data';
import { useStyles2 } from '@grafana/ui';

/** Rows shown per frame; the backend's limits keep answers near this. */
const MAX_ROWS = 500;

function cell(field: Field, value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (field.type === FieldType.time) {
    return dateTimeFormat(value as number);
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * FrameTable shows a data frame as a plain table: one column per field, time
 * fields in the user's time zone, structured values (a feature's observed and
 * expected values, say) as JSON.
 */
export function FrameTable({ frame }: { frame: DataFrame }) {
  const styles = useStyles2(getStyles);
  const rows = Math.min(frame.length, MAX_ROWS);
  return (
    <table className={styles.table}>
      <thead>
        <tr>
          {frame.fields.map((f) => (
            <th key={f.name}>{f.config?.displayName ?? f.name}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {Array.from({ length: rows }, (_, i) => (
          <tr key={i}>
            {frame.fields.map((f) => (
              <td key={f.name}>{cell(f, f.values[i])}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  table: css({
    width: '100%',
    borderCollapse: 'collapse',
    marginBottom: theme.spacing(2),
    'th, td': {
      padding: theme.spacing(0.5, 1),
      borderBottom: `1px solid ${theme.colors.border.weak}`,
      textAlign: 'left',
      verticalAlign: 'top',
    },
    th: { color: theme.colors.text.secondary, fontWeight: theme.typography.fontWeightMedium },
  }),
});
